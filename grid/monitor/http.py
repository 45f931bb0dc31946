"""The few pieces of HTTP the monitor needs, as plain ASGI: a request, responses, routes.

No framework: the monitor serves a handful of routes to one local browser. Every response
carries a Content-Security-Policy (the pages run only their own script, load nothing from
elsewhere) because job ids, commands and logs come from the network.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

__all__ = ["CSP", "Request", "Response", "Route", "Streaming", "error", "html", "json_response"]

CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)  # what the route's pattern captured

    @classmethod
    def from_scope(cls, scope: dict[str, Any]) -> Request:
        query = {key: values[-1] for key, values in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        return cls(scope["method"], scope["path"], query, headers)


@dataclass
class Response:
    body: bytes
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    async def send(self, send: Send, receive: Receive) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": _headers(self)})
        await send({"type": "http.response.body", "body": self.body})


@dataclass
class Streaming:
    """A response whose body is produced as it goes (Server-Sent Events, a proxied download)."""

    chunks: AsyncIterator[bytes]
    content_type: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    async def send(self, send: Send, receive: Receive) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": _headers(self)})
        # The body ends when it is all sent or when the browser goes away (an event stream never
        # ends by itself): whichever comes first cancels the other.
        body = asyncio.ensure_future(self._body(send))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait([body, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (body, gone):
                task.cancel()
            await asyncio.gather(body, gone, return_exceptions=True)
            if isinstance(self.chunks, AsyncGenerator):
                await self.chunks.aclose()  # runs its finally (unsubscribe, temporary files) now

    async def _body(self, send: Send) -> None:
        async for chunk in self.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _headers(response: Response | Streaming) -> list[tuple[bytes, bytes]]:
    headers = {
        "content-type": response.content_type,
        "content-security-policy": CSP,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "cache-control": "no-store",
        **response.headers,
    }
    return [(name.encode(), value.encode("latin-1")) for name, value in headers.items()]


def html(text: str, status: int = 200) -> Response:
    return Response(text.encode(), status)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data).encode(), status, "application/json")


def error(status: int, code: str, message: str) -> Response:
    """An error as the facilitator's API words them: ``{"code", "message"}``."""
    return json_response({"code": code, "message": message}, status)


Handler = Callable[[Request], Awaitable[Response | Streaming]]


@dataclass(frozen=True)
class Route:
    """``GET`` ``pattern`` (a regex over the decoded path, fully matched) → ``handler``."""

    pattern: str
    handler: Handler

    def match(self, path: str) -> dict[str, str] | None:
        found = re.fullmatch(self.pattern, path)
        return {key: unquote(value) for key, value in found.groupdict().items()} if found else None
