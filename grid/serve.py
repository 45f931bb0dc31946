"""``python -m grid.serve``: the facilitator's or the miner's ASGI server (uvicorn).

Why uvicorn rather than daphne: flow control. Daphne buffers a request body whole (in memory,
then on disk) before the application sees it, and queues a streamed response without ever
pausing the application, so serving a 1 GiB object cost the facilitator over 1 GiB of RSS
(bench/data_plane.py). Uvicorn stops reading a socket while the application is behind and makes
``send()`` wait while the client is, so an object streams through a constant amount of memory.

The access log never shows query strings: the store's signed URLs carry their credentials there
(``?expires=…&signature=…``), and anyone reading the log could use them until they expire.

Limits (docs/configuration.md#limits), from the role's Django settings: the largest websocket
message (``GRID_MAX_FRAME_BYTES``; more and websockets' sans-I/O protocol closes that connection
with 1009 and says why, before reading the payload; before the handshake, 64 KiB:
:mod:`node.ws_limits`), the connections past which new requests get
503 (``GRID_HTTP_MAX_CONNECTIONS``), the keep-alive idle time, and the deadlines and head size of
:mod:`node.http_timeouts` against slow clients.

Usage: ``python -m grid.serve [-b HOST] [-p PORT] [APP]`` (default app ``grid.asgi:application``).
"""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn

from node.http_timeouts import TimedHttpToolsProtocol
from node.ws_limits import HandshakeCappedWebSockets

__all__ = ["RedactQuery", "main", "server_limits"]


class RedactQuery(logging.Filter):
    """Cuts the request path of uvicorn's access log records at its ``?``."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn.access records: (client address, method, full path, http version, status)
        if isinstance(record.args, tuple) and len(record.args) == 5 and isinstance(record.args[2], str):
            args = list(record.args)
            args[2] = args[2].split("?", 1)[0]
            record.args = tuple(args)
        return True


def log_config() -> dict:
    level = os.environ.get("GRID_LOG_LEVEL", "INFO")
    config = {**uvicorn.config.LOGGING_CONFIG}
    config["filters"] = {"redact_query": {"()": RedactQuery}}
    config["handlers"] = {
        name: {**handler, "filters": ["redact_query"]} if name == "access" else handler
        for name, handler in config["handlers"].items()
    }
    config["loggers"] = {**config["loggers"], "uvicorn": {**config["loggers"]["uvicorn"], "level": level}}
    return config


def server_limits() -> dict:
    """Uvicorn's arguments for the limits in the role's settings (read now, not at import)."""
    from django.conf import settings

    return {
        "http": TimedHttpToolsProtocol.configured(
            header_timeout=settings.GRID_HTTP_HEADER_TIMEOUT_S,
            body_timeout=settings.GRID_HTTP_BODY_TIMEOUT_S,
            max_header_bytes=settings.GRID_HTTP_MAX_HEADER_BYTES,
        ),
        "ws_max_size": settings.GRID_MAX_FRAME_BYTES or None,
        # Off by default: our frames are small JSON, mostly over loopback or a LAN, and a
        # compressed connection holds zlib buffers (~300 KiB) until it is collected: a miner
        # whose executors connect once per job grew by a fifth under bench/soak.py with it on.
        "ws_per_message_deflate": settings.GRID_WS_COMPRESSION,
        "limit_concurrency": settings.GRID_HTTP_MAX_CONNECTIONS or None,
        "timeout_keep_alive": settings.GRID_HTTP_KEEPALIVE_S,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m grid.serve", description=__doc__.split("\n")[0])
    parser.add_argument("-b", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=8000)
    parser.add_argument("app", nargs="?", default="grid.asgi:application")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "grid.settings.facilitator")  # as grid/asgi.py
    uvicorn.run(
        args.app,
        host=args.host,
        port=args.port,
        log_config=log_config(),
        # The sans-I/O implementation: an oversized message closes with 1009 *and a reason*
        # (the legacy one, deprecated, gives none); the first one is held to the handshake's size.
        ws=HandshakeCappedWebSockets,
        lifespan="on",  # grid.asgi answers it: the facilitator starts its control plane there
        # Our websocket peers keep their own heartbeats (protocol/transport.py).
        ws_ping_interval=None,
        # An open dashboard tab (a Server-Sent Events stream) would otherwise hold a stop for 30 s.
        timeout_graceful_shutdown=3,
        **server_limits(),
    )


if __name__ == "__main__":
    main()
