"""node/ws_limits.py: the server reads at most 64 KiB from a websocket peer before its handshake.

A real uvicorn in this event loop, with :class:`HandshakeCappedWebSockets` as ``grid.serve`` runs
it, in front of an ASGI app that answers each message with its size, and a real websockets client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from grid.local import free_port
from node.ws_limits import HandshakeCappedWebSockets
from protocol.handshake import MAX_HANDSHAKE_FRAME_BYTES

MAX_FRAME = 1024 * 1024


async def sizes(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept, then answer every message with its length in bytes."""
    assert scope["type"] == "websocket"
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes") or (message.get("text") or "").encode()
        await send({"type": "websocket.send", "text": str(len(data))})


@pytest.fixture
async def url() -> AsyncIterator[str]:
    config = uvicorn.Config(
        sizes,
        port=free_port(),
        ws=HandshakeCappedWebSockets,
        ws_max_size=MAX_FRAME,
        ws_ping_interval=None,
        lifespan="off",
        log_config=None,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"ws://127.0.0.1:{config.port}/"
    server.should_exit = True
    await task


async def test_a_first_message_over_64_kib_is_closed_with_1009_and_a_reason(url: str) -> None:
    async with connect(url, max_size=None) as ws:
        await ws.send("x" * (MAX_HANDSHAKE_FRAME_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    # Compressed (permessage-deflate, uvicorn's default), the size is known only as it inflates.
    assert closed.value.rcvd.reason == "frame exceeds limit of 65536 bytes"


async def test_after_the_first_message_the_configured_limit_applies(url: str) -> None:
    async with connect(url, max_size=None) as ws:
        await ws.send(b"h" * MAX_HANDSHAKE_FRAME_BYTES)  # as large as a handshake may be
        assert await ws.recv() == str(MAX_HANDSHAKE_FRAME_BYTES)
        await ws.send(b"y" * MAX_FRAME)
        assert await asyncio.wait_for(ws.recv(), 5) == str(MAX_FRAME)
        await ws.send(b"z" * (MAX_FRAME + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_fragmented_first_message_is_capped_as_a_whole(url: str) -> None:
    async with connect(url, max_size=None) as ws:
        await ws.send([b"f" * 40_000, b"f" * 40_000])
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
