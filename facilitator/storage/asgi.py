"""``PUT /objects/<key>`` as a plain ASGI application: the body goes into the store as it arrives.

Django's ASGI handler reads a request body whole (into a spooled temporary file) before the
view runs, so an upload through :func:`facilitator.storage.views.object_view` is written twice
and answered only after both writes. In front of Django, :class:`StreamingUploads` takes signed
PUTs to the store's URLs itself: each chunk received is hashed and written while the next is
read, and the server's flow control (uvicorn stops reading while we are behind) bounds memory.
Every other request goes on to Django, which still serves ``GET``/``HEAD`` (ranges) and, under
WSGI or the test client, ``PUT`` too: same checks, same answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from facilitator.storage.errors import ObjectTooLarge
from facilitator.storage.handler import get_store
from facilitator.storage.views import REFUSALS, refusal

__all__ = ["StreamingUploads"]

BATCH_BYTES = 1024 * 1024
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ClientGone(Exception):
    """The uploader disconnected before the body was complete: nothing is stored."""


class StreamingUploads:
    """ASGI middleware: signed ``PUT``\\ s under ``prefix`` stream into the default store."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], prefix: str = "/objects/") -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope.get("method") != "PUT" or not path.startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        store = get_store()
        signer = getattr(store, "url_signer", None)
        if signer is None:
            await _answer(
                send, 404, {"code": "not_found", "message": "this store hands out its own URLs", "errors": []}
            )
            return
        key = path[len(self.prefix) :]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            overwrite = _first(query, "overwrite") == "1"
            signer.verify("PUT", key, _first(query, "expires"), _first(query, "signature"), overwrite)
            declared = _header(scope, b"content-length")
            if store.max_size is not None and declared.isdigit() and int(declared) > store.max_size:
                raise ObjectTooLarge(key, store.max_size)
            info = await store.aput(key, _body(receive), overwrite=overwrite)
        except REFUSALS as exc:
            status, code, message = refusal(exc)
            await _answer(send, status, {"code": code, "message": message, "errors": []})
            return
        except ClientGone:
            return
        await _answer(send, 200, {"key": info.key, "size": info.size, "sha256": info.sha256})


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    """The request body in pieces of at least ``BATCH_BYTES``.

    The server hands the body over in pieces of ~64 KiB; the store writes from a worker thread,
    and each piece it pulls crosses from that thread to the event loop and back, so batching them
    saves most of the facilitator's CPU on a large upload.
    """
    pending = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        pending += message.get("body", b"")
        more = message.get("more_body", False)
        if len(pending) >= BATCH_BYTES or (pending and not more):
            yield bytes(pending)
            pending.clear()
        if not more:
            return


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""
