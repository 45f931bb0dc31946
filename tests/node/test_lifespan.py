"""The ASGI lifespan wrapper: hooks run on the server's loop; a failing startup says why; other scopes pass through."""

from __future__ import annotations

import asyncio

from node.lifespan import Lifespan


async def talk(app: Lifespan, *messages: str) -> list[dict]:
    inbox = [{"type": f"lifespan.{message}"} for message in messages]
    sent: list[dict] = []

    async def receive() -> dict:
        return inbox.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    return sent


def test_startup_and_shutdown_hooks_run_and_are_answered() -> None:
    ran: list[str] = []

    async def startup() -> None:
        ran.append("startup")

    async def shutdown() -> None:
        ran.append("shutdown")

    sent = asyncio.run(talk(Lifespan(None, startup, shutdown), "startup", "shutdown"))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert ran == ["startup", "shutdown"]


def test_a_failing_startup_is_reported_with_its_reason() -> None:
    async def startup() -> None:
        raise OSError("the control plane could not listen on 127.0.0.1:8005")

    sent = asyncio.run(talk(Lifespan(None, startup), "startup"))
    assert sent == [
        {"type": "lifespan.startup.failed", "message": "OSError: the control plane could not listen on 127.0.0.1:8005"}
    ]


def test_without_hooks_the_lifespan_is_only_answered() -> None:
    sent = asyncio.run(talk(Lifespan(None), "startup", "shutdown"))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_other_scopes_reach_the_app() -> None:
    seen: list[dict] = []

    async def app(scope, receive, send) -> None:
        seen.append(scope)

    asyncio.run(Lifespan(app)({"type": "http"}, None, None))
    assert seen == [{"type": "http"}]
