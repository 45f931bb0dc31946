"""node/http_timeouts.py: deadlines against slow HTTP clients, on a real uvicorn in this event loop.

The deadlines here are a few tenths of a second; the assertions are about what the server does
(answers 408 / 431, closes, or serves), with wide margins on when.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn

from grid.local import free_port
from node.http_timeouts import TimedHttpToolsProtocol

SCALE = float(os.environ.get("GRID_TEST_TIME_SCALE", "1"))
DEADLINE_S = 0.3 * SCALE
WAIT_S = 10 * SCALE  # how long a test waits for the server to act before failing

Scope = dict[str, Any]


async def app(scope: Scope, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]) -> None:
    """``/slow``: thinks 3 deadlines before answering; ``/late-reader``: before reading the body.
    Otherwise reads the body and answers its length."""
    if scope["path"] == "/late-reader" or scope["path"] == "/slow":
        await asyncio.sleep(3 * DEADLINE_S)
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def serve(header_timeout: float, body_timeout: float, max_header_bytes: int) -> AsyncIterator[int]:
    protocol = TimedHttpToolsProtocol.configured(
        header_timeout=header_timeout, body_timeout=body_timeout, max_header_bytes=max_header_bytes
    )
    config = uvicorn.Config(
        app, port=free_port(), http=protocol, lifespan="off", log_config=None, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield config.port
    server.should_exit = True
    await task


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async for port in serve(DEADLINE_S, DEADLINE_S, 8 * 1024):
        yield port


@pytest.fixture
async def port_without_limits() -> AsyncIterator[int]:
    async for port in serve(0, 0, 0):
        yield port


async def dial(port: int, data: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if data:
        writer.write(data)
        await writer.drain()
    return reader, writer


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), WAIT_S)


def request(path: str = "/", body: bytes = b"") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


async def response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    fields = dict(line.split(b": ", 1) for line in head.rstrip(b"\r\n").split(b"\r\n")[1:])
    length = int(fields[b"content-length"])
    return head.split(b"\r\n", 1)[0] + b" " + await reader.readexactly(length)


async def test_a_head_that_stalls_gets_408_and_is_closed(port: int) -> None:
    reader, _ = await dial(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    answer = await until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert answer.endswith(b"request line and headers not received within 0.3 s")


async def test_a_connection_that_never_speaks_gets_408(port: int) -> None:
    reader, _ = await dial(port)
    assert (await until_closed(reader)).startswith(b"HTTP/1.1 408 ")


async def test_a_kept_alive_connection_that_stalls_on_its_next_request_gets_408(port: int) -> None:
    reader, writer = await dial(port, request(body=b"abc"))
    assert await response(reader) == b"HTTP/1.1 200 OK 3"
    await asyncio.sleep(2 * DEADLINE_S)  # idle between requests: keep-alive's business, not ours
    writer.write(b"GET / HTTP/1.1\r\n")
    assert (await until_closed(reader)).startswith(b"HTTP/1.1 408 ")


async def test_the_time_the_application_takes_does_not_count(port: int) -> None:
    reader, _ = await dial(port, request("/slow"))
    assert await response(reader) == b"HTTP/1.1 200 OK 0"


async def test_a_slow_but_steady_body_is_not_cut(port: int) -> None:
    reader, writer = await dial(port, f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {8 * 100}\r\n\r\n".encode())
    for _ in range(8):  # 8 × (a third of the deadline): over twice the deadline in all
        await asyncio.sleep(DEADLINE_S / 3)
        writer.write(b"x" * 100)
    assert await response(reader) == b"HTTP/1.1 200 OK 800"


async def test_a_body_that_stops_is_cut(port: int) -> None:
    reader, _ = await dial(port, request(body=b"x" * 1000)[:-990])
    assert await until_closed(reader) == b""


async def test_a_body_the_application_is_not_reading_yet_is_not_cut(port: int) -> None:
    """The server stopped reading (flow control): the client is not the one stalling."""
    body = b"x" * (32 * 1024 * 1024)  # far more than the socket buffers hold
    reader, writer = await dial(port)
    writer.write(request("/late-reader", body))
    assert await response(reader) == b"HTTP/1.1 200 OK " + str(len(body)).encode()
    writer.close()


async def test_a_head_over_the_size_limit_gets_431(port: int) -> None:
    reader, writer = await dial(port, b"GET / HTTP/1.1\r\nHost: x\r\n")
    try:
        for _ in range(40):
            writer.write(b"X-Filler: " + b"a" * 1000 + b"\r\n")
            await writer.drain()
    except ConnectionError:
        pass  # closed while we were still sending; the answer is read below
    answer = await until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert answer.endswith(b"request line and headers over 8192 bytes")


async def test_limits_of_zero_are_off(port_without_limits: int) -> None:
    stalled = [
        await dial(port_without_limits, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "),
        await dial(port_without_limits, request(body=b"x" * 1000)[:-990]),
    ]
    for reader, _ in stalled:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 3 * DEADLINE_S)
    for _, writer in stalled:
        writer.close()  # or the server's shutdown would wait for the stalled request forever
