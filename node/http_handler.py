"""Django's ASGI handler, with every request's sync code on the process's one sync thread.

Django's own handler opens a ``ThreadSensitiveContext`` per request: each request's sync code
(middleware, views, the request signals) then runs on a thread made for that request, which
opens a database connection of its own and closes it at the end. Under load that was a thread
start, a fresh SQLite connection with a cold page cache and its PRAGMAs per request: about a
third of the facilitator's CPU per job. Here requests share asgiref's single sync thread with
the consumers' database work instead: one persistent connection, no thread per request. The
roles' databases take one writer at a time anyway, so nothing that could run in parallel is
serialised; slow I/O (object downloads) reads through ``asyncio.to_thread``, not this thread.
"""

from __future__ import annotations

from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_started
from django.db import close_old_connections, reset_queries

__all__ = ["SharedThreadASGIHandler", "get_asgi_application"]


class SharedThreadASGIHandler(ASGIHandler):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)


def get_asgi_application() -> SharedThreadASGIHandler:
    """As :func:`django.core.asgi.get_asgi_application`, with the shared-thread handler.

    Django's two receivers of ``request_started`` are sync, so the handler crossed to the sync
    thread for them before every request: ``close_old_connections`` checks the shared thread's
    connection, which the consumers' database calls check anyway (channels does it around each),
    and ``reset_queries`` empties the query log kept only under ``DEBUG`` (bounded there).
    ``request_finished`` keeps its receivers: Django sends it from the sync thread regardless.
    """
    django.setup(set_prefix=False)
    request_started.disconnect(close_old_connections)
    request_started.disconnect(reset_queries)
    return SharedThreadASGIHandler()
