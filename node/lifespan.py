"""ASGI lifespan for a role's app: async work that lives as long as the server (the control plane's gRPC server).

``GRID_LIFESPAN`` in a role's settings names ``(startup, shutdown)`` coroutine functions, run on
the ASGI server's own event loop; a startup that raises stops the server from starting, with
its reason. Without it, the lifespan only answers that it is complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Lifespan"]

Hook = Callable[[], Awaitable[None]]


class Lifespan:
    def __init__(self, app: Any, startup: Hook | None = None, shutdown: Hook | None = None) -> None:
        self.app, self.startup, self.shutdown = app, startup, shutdown

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.startup is not None:
                        await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return None
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.shutdown is not None:
                    await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return None
