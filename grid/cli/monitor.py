"""``grid monitor``: serve the local web page that follows your jobs live (:mod:`grid.monitor`)."""

from __future__ import annotations

import argparse
import errno
import socket

from grid.cli.common import add_facilitator_option, client_for
from grid.cli.errors import CliError, ExitCode

__all__ = ["DEFAULT_PORT", "add_parser"]

DEFAULT_PORT = 8765


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, not {number}")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not 0.1 <= number <= 3600:
        raise argparse.ArgumentTypeError(f"between 0.1 and 3600 seconds, not {value}")
    return number


def cmd_monitor(args: argparse.Namespace) -> int:
    from facilitator_sdk import AsyncClient
    from grid.monitor import serve

    _check_free(args.port)
    client = client_for(args, AsyncClient)
    # The key's public half only (its hotkey): the key itself never leaves its file.
    ready = f"monitor: {{url}} (jobs of {client.keypair.hotkey} on {client.facilitator_url}; Ctrl-C stops it)"
    serve(client, args.port, poll_s=args.poll, ready=ready)
    return 0


def _check_free(port: int) -> None:
    """Fail in one line, before anything starts, if the port is taken (uvicorn would log and exit)."""
    if port == 0:
        return
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(
                    f"port {port} is in use on 127.0.0.1: pick another with --port", ExitCode.USAGE
                ) from None
            raise


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``grid monitor``."""
    p = sub.add_parser("monitor", help="a local web page following your jobs live (127.0.0.1 only)")
    add_facilitator_option(p)
    p.add_argument("--key", help="the client key to sign with (default: $GRID_HOME/keys/client.key)")
    p.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"local port (default {DEFAULT_PORT}; 0: any free one)"
    )
    p.add_argument(
        "--poll", type=_seconds, default=2.0, help="seconds between reads of the job list for new jobs (default 2)"
    )
    p.set_defaults(func=cmd_monitor)
