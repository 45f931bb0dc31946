"""The monitor's ASGI application: the pages' routes, ``/events`` (Server-Sent Events), static files.

Served by uvicorn on 127.0.0.1 only (:func:`grid.monitor.serve`). Requests whose ``Host`` is not
a loopback name are refused, so that a web page elsewhere cannot reach the monitor through a
DNS name it points at 127.0.0.1 (DNS rebinding) and read the client's jobs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from facilitator_sdk import AsyncClient
from grid.monitor.feed import Event, Feed
from grid.monitor.http import Receive, Request, Response, Route, Send, Streaming, error
from grid.monitor.pages import PAGES

__all__ = ["Monitor"]

log = logging.getLogger("grid.monitor")

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
HEARTBEAT_S = 15.0  # a comment line this often keeps proxies and the browser from timing the stream out


class Monitor:
    """``Monitor(client)`` is the ASGI app; its lifespan starts and stops the :class:`Feed`.

    Args:
        client: the client's signed SDK client; the monitor closes it when the server stops.
        poll_s: how often the job list is read for new jobs.
    """

    def __init__(self, client: AsyncClient, poll_s: float | None = None) -> None:
        self.client = client
        self.facilitator_url = client.facilitator_url
        self.feed = Feed(client) if poll_s is None else Feed(client, poll_s)
        self.routes: list[Route] = [route for module in PAGES for route in module.routes(self)]
        self.routes += [Route(r"/events", self.events), Route(r"/static/(?P<name>[a-z]+\.(?:js|css))", self.static)]

    def __repr__(self) -> str:
        return f"<Monitor of {self.facilitator_url}>"

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            response = await self._respond(Request.from_scope(scope))
            await response.send(send, receive)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.feed.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.feed.stop()
                await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _respond(self, request: Request) -> Response | Streaming:
        if _hostname(request.headers.get("host", "")) not in LOOPBACK_HOSTS:
            return error(421, "wrong_host", "the monitor answers only at 127.0.0.1 or localhost")
        if request.method != "GET":
            return error(405, "method_not_allowed", "the monitor only reads: GET")
        for route in self.routes:
            params = route.match(request.path)
            if params is not None:
                request.params = params
                return await route.handler(request)
        return error(404, "not_found", f"no page {request.path}")

    async def static(self, request: Request) -> Response:
        path = STATIC / request.params["name"]
        if not path.is_file():
            return error(404, "not_found", f"no file {request.params['name']}")
        return Response(path.read_bytes(), content_type=STATIC_TYPES[path.suffix])

    async def events(self, request: Request) -> Streaming:
        """``/events[?job=ID]``: every ``job`` and ``status`` event (of one job, given ``job``)."""
        return Streaming(
            self._stream(request.query.get("job")), "text/event-stream", headers={"x-accel-buffering": "no"}
        )

    async def _stream(self, job_id: str | None) -> AsyncIterator[bytes]:
        queue = self.feed.subscribe()
        try:
            yield b"retry: 2000\nevent: ready\ndata: {}\n\n"
            while self.feed.subscribed(queue):
                try:
                    event = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if job_id is None or event.job_id == job_id:
                    yield _frame(event)
        finally:
            self.feed.unsubscribe(queue)


def _hostname(host: str) -> str:
    """``Host`` without its port (``[::1]:8765`` → ``[::1]``)."""
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


def _frame(event: Event) -> bytes:
    return f"event: {event.kind}\ndata: {json.dumps(event.data)}\n\n".encode()
