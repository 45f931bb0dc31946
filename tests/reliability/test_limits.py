"""Bad input never takes a process down: limits on a real grid (docs/configuration.md#limits).

One local grid (real processes on free loopback ports) with small limits, so that each flood is
short: 5 signed requests a second per hotkey (bursts of 10), 20 unsigned ones per address (bursts
of 40), 2 client websockets per hotkey, 5
client frames a second (bursts of 10), 256 KiB websocket messages, 1.5 s for a request's head
and for a pause in its body. Each test floods one way, checks the refusal (status or close code
and reason) and that everyone else is still served; after each, the facilitator is alive and a
normal job still completes. Time margins are generous: the assertions are about what happens,
not how fast.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import ConnectionClosed

from facilitator_sdk import Client, JobSpec, RateLimitedError
from facilitator_sdk.auth import GridAuth
from grid.local import LocalGrid, free_port
from protocol.errors import HandshakeError
from protocol.keys import Keypair
from protocol.messages import FACILITATOR_TO_CLIENT, Error, JobWatch
from protocol.transport import Connection, ConnectionLost, connect

pytestmark = pytest.mark.slow

SCALE = float(os.environ.get("GRID_TEST_TIME_SCALE", "1"))
API_RATE, API_BURST = 5, 10
ADDRESS_RATE, ADDRESS_BURST = 20, 40
WS_CONNECTIONS = 2
FRAME_RATE, FRAME_BURST = 5, 10
MAX_FRAME = 256 * 1024
HEAD_TIMEOUT_S = 1.5
LIMITS = {
    "GRID_REDELIVER_S": "0.5",
    "GRID_API_RATE": str(API_RATE),
    "GRID_API_BURST": str(API_BURST),
    "GRID_API_ADDRESS_RATE": str(ADDRESS_RATE),
    "GRID_API_ADDRESS_BURST": str(ADDRESS_BURST),
    "GRID_WS_CLIENT_CONNECTIONS": str(WS_CONNECTIONS),
    "GRID_WS_CLIENT_FRAME_RATE": str(FRAME_RATE),
    "GRID_WS_CLIENT_FRAME_BURST": str(FRAME_BURST),
    "GRID_MAX_FRAME_BYTES": str(MAX_FRAME),
    "GRID_HTTP_HEADER_TIMEOUT_S": str(HEAD_TIMEOUT_S),
    "GRID_HTTP_BODY_TIMEOUT_S": str(HEAD_TIMEOUT_S),
}
CUT_WITHIN_S = 20 * SCALE  # the server's deadline is HEAD_TIMEOUT_S: this is only a backstop


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    grid = LocalGrid(
        tmp_path_factory.mktemp("limits"),
        facilitator_port=free_port(),
        miner_port=free_port(),
        executor_classes="cpu.small:2:1",
        extra_env=LIMITS,
    )
    grid.start(timeout=60)
    try:
        yield grid
    finally:
        grid.stop()


@pytest.fixture(autouse=True)
def still_serving(grid: LocalGrid, tmp_path: Path) -> Iterator[None]:
    """After each flood: the facilitator process lives and a normal job completes."""
    yield
    process = grid.processes["facilitator"]
    assert process.poll() is None, f"the facilitator exited with {process.returncode}:\n{log_tail(grid)}"
    with Client(grid.facilitator_url, tmp_path / "bystander.key") as client:
        job = client.run(JobSpec(command=["echo", "still here"]), timeout=60 * SCALE)
    assert job.result.stdout.strip() == "still here"


def log_tail(grid: LocalGrid, role: str = "facilitator") -> str:
    path = grid.home / "logs" / f"{role}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-40:]) if path.exists() else ""


def signed_http(grid: LocalGrid, keypair: Keypair) -> httpx.Client:
    return httpx.Client(base_url=f"{grid.facilitator_url}/api/v1", auth=GridAuth(keypair), timeout=10)


def ws_url(grid: LocalGrid) -> str:
    return f"ws://127.0.0.1:{grid.facilitator_port}/ws/client/"


async def dial(grid: LocalGrid, keypair: Keypair) -> Connection:
    return await connect(ws_url(grid), keypair, "client", FACILITATOR_TO_CLIENT)


async def answers(connection: Connection) -> None:
    """The connection is served: watching an unknown job is answered ``not_found``."""
    job_id = str(uuid.uuid4())
    await connection.send(JobWatch(job_ids=[job_id]))
    reply = await asyncio.wait_for(connection.recv(), 10 * SCALE)
    assert isinstance(reply, Error) and (reply.code, reply.ref) == ("not_found", job_id), reply


# -- REST ------------------------------------------------------------------------------------------


def test_a_flood_of_signed_requests_gets_429_with_retry_after_while_another_hotkey_is_served(
    grid: LocalGrid,
) -> None:
    flooder, other = Keypair.generate(), Keypair.generate()
    with signed_http(grid, flooder) as http:
        responses = [http.get("/jobs", params={"limit": 1}) for _ in range(4 * API_BURST)]
    statuses = [response.status_code for response in responses]
    assert set(statuses) == {200, 429}, statuses
    assert statuses[:API_BURST] == [200] * API_BURST  # the burst goes through
    refused = next(response for response in responses if response.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    body = refused.json()
    assert sorted(body) == ["code", "errors", "message"] and body["code"] == "rate_limited", body
    assert body["message"].startswith(f"too many requests from hotkey {flooder.hotkey[:12]}…: more than 5 a second")

    with signed_http(grid, other) as http:
        assert http.get("/jobs", params={"limit": 1}).status_code == 200


def test_the_sdk_raises_rate_limited_error_once_its_retries_are_spent(grid: LocalGrid) -> None:
    keypair = Keypair.generate()
    with (
        Client(grid.facilitator_url, keypair, rate_limit_retries=0) as client,
        pytest.raises(RateLimitedError) as refused,
    ):
        for _ in range(10 * API_BURST):
            client.list_jobs(limit=1)
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1


class Recording(httpx.HTTPTransport):
    """What the facilitator answered, request by request."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        return response


def test_the_sdk_retries_a_429_after_retry_after(grid: LocalGrid) -> None:
    """Twice the burst in a row: the requests past it are refused, sent again, and go through."""
    transport = Recording()
    with Client(grid.facilitator_url, Keypair.generate(), transport=transport) as client:
        for _ in range(2 * API_BURST):
            assert client.list_jobs(limit=1) == []
    assert 429 in transport.statuses, transport.statuses
    assert transport.statuses.count(200) == 2 * API_BURST


def test_unsigned_requests_are_limited_per_address_but_the_store_s_signed_urls_are_not(grid: LocalGrid) -> None:
    """Executors behind one address fetch and upload through the store's URLs; the URL is the grant."""
    keypair = Keypair.generate()
    with signed_http(grid, keypair) as http:
        url = http.post("/uploads", json={"filename": "data.txt"}).json()["url"]
    with httpx.Client(timeout=10) as plain:
        assert plain.put(url, content=b"data").status_code == 200
        store = [plain.get(url).status_code for _ in range(3 * ADDRESS_BURST)]
        api = [plain.get(f"{grid.facilitator_url}/api/v1/registry") for _ in range(3 * ADDRESS_BURST)]
    assert set(store) == {403}, store  # a PUT's signature does not let anyone GET; never 429
    refused = next(response for response in api if response.status_code == 429)
    assert refused.json()["message"].startswith("too many requests from address 127.0.0.1 (unsigned requests)")
    assert int(refused.headers["Retry-After"]) >= 1


# -- websockets ------------------------------------------------------------------------------------


async def test_a_connection_past_the_hotkey_s_limit_is_closed_with_4429_and_the_first_keeps_working(
    grid: LocalGrid,
) -> None:
    keypair = Keypair.generate()
    opened = [await dial(grid, keypair) for _ in range(WS_CONNECTIONS)]
    try:
        with pytest.raises(HandshakeError) as refused:
            await dial(grid, keypair)
        assert refused.value.close_code == 4429
        assert str(refused.value) == "too many connections for this hotkey"
        await answers(opened[0])
        other = await dial(grid, Keypair.generate())  # another hotkey is not counted with this one
        await answers(other)
        await other.close()
        # Closing one makes room (the server counts the close asynchronously: try for a while).
        await opened.pop().close()
        deadline = time.monotonic() + 10 * SCALE
        while True:
            try:
                opened.append(await dial(grid, keypair))
                break
            except HandshakeError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        await answers(opened[-1])
    finally:
        for connection in opened:
            await connection.close()


async def test_a_frame_flood_is_answered_rate_limited_then_closed_with_4429(grid: LocalGrid) -> None:
    flooder = await dial(grid, Keypair.generate())
    bystander = await dial(grid, Keypair.generate())
    try:
        try:
            # Far more than the burst and the tolerance after it (another burst's worth), at once.
            for _ in range(10 * FRAME_BURST):
                await flooder.send(JobWatch(job_ids=[str(uuid.uuid4())]))
        except ConnectionLost:
            pass  # closed already
        codes = []
        with pytest.raises(ConnectionLost) as lost:
            while True:
                reply = await asyncio.wait_for(flooder.recv(), 10 * SCALE)
                codes.append(reply.code)
        assert "rate_limited" in codes, codes
        assert codes.count("not_found") <= FRAME_BURST + 2 * FRAME_RATE, codes  # the rest were dropped
        assert lost.value.close_code == 4429
        assert lost.value.reason == f"too many frames: kept sending more than {FRAME_RATE} a second"
        await answers(bystander)
    finally:
        await flooder.close()
        await bystander.close()


async def test_an_oversized_frame_closes_that_connection_with_1009_and_no_other(grid: LocalGrid) -> None:
    keypair = Keypair.generate()
    oversized, neighbour = await dial(grid, keypair), await dial(grid, keypair)
    try:
        await oversized.ws.send("x" * (MAX_FRAME + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(oversized.ws.recv(), 10 * SCALE)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert closed.value.rcvd.reason.endswith(f"exceeds limit of {MAX_FRAME} bytes"), closed.value.rcvd
        await answers(neighbour)
    finally:
        await neighbour.close()


async def test_a_frame_over_64_kib_before_the_handshake_is_refused_by_the_server(grid: LocalGrid) -> None:
    """grid.serve reads no more than a handshake needs from a peer that has not proved its key."""
    async with websockets_connect(ws_url(grid), max_size=None) as ws:
        await ws.recv()  # auth.challenge
        await ws.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10 * SCALE)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    assert closed.value.rcvd.reason == f"frame with {64 * 1024 + 1} bytes exceeds limit of 65536 bytes"
    await answers(await dial(grid, Keypair.generate()))


async def test_websockets_are_not_compressed_unless_configured(grid: LocalGrid) -> None:
    """GRID_WS_COMPRESSION is off by default: the client offers permessage-deflate (websockets
    does by default) and the server declines it, so no connection holds zlib buffers."""
    connection = await dial(grid, Keypair.generate())
    try:
        assert "permessage-deflate" in connection.ws.request.headers.get("Sec-WebSocket-Extensions", "")
        assert connection.ws.response.headers.get("Sec-WebSocket-Extensions") is None
        await answers(connection)
    finally:
        await connection.close()


# -- slow HTTP clients -----------------------------------------------------------------------------


def open_socket(grid: LocalGrid, first_bytes: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", grid.facilitator_port), timeout=CUT_WITHIN_S)
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a socket timeout fails the test)."""
    received = b""
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_slowloris_connections_are_cut_with_408_and_others_are_served_meanwhile(grid: LocalGrid) -> None:
    started = time.monotonic()
    half_heads = [open_socket(grid, b"GET /api/v1/registry HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ") for _ in range(20)]
    silent = open_socket(grid)  # connects, never says a word
    for _ in range(5):
        assert httpx.get(f"{grid.facilitator_url}/api/v1/registry", timeout=10).status_code == 200
    for sock in [*half_heads, silent]:
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408 "), "a stalled head must be answered 408"
    assert time.monotonic() - started < CUT_WITHIN_S


def test_a_stalled_request_body_is_cut(grid: LocalGrid) -> None:
    keypair = Keypair.generate()
    with signed_http(grid, keypair) as http:
        request = http.build_request("POST", "/jobs", content=b"{" * 1000)
        request = next(GridAuth(keypair).auth_flow(request))
    head = f"POST {request.url.raw_path.decode()} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in request.headers.items() if name.startswith("x-grid"))
    sock = open_socket(grid, head.encode() + b"\r\n" + b"{" * 10)
    started = time.monotonic()
    read_until_closed(sock)  # closed by the server, not by our timeout
    assert time.monotonic() - started < CUT_WITHIN_S


def test_a_head_over_the_size_limit_gets_431(grid: LocalGrid) -> None:
    sock = open_socket(grid, b"GET /api/v1/registry HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    try:
        for _ in range(100):  # 100 KB of headers, over the default 64 KiB
            sock.sendall(filler)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed while we were still sending: its answer is read below
    assert read_until_closed(sock).startswith(b"HTTP/1.1 431 ")


def test_past_the_connection_limit_new_requests_get_503(tmp_path: Path) -> None:
    """A facilitator alone, allowed 4 connections: a fifth request is answered 503, not queued."""
    lone = LocalGrid(tmp_path, facilitator_port=free_port(), miner_port=free_port(), extra_env=LIMITS)
    env = {**lone.env("facilitator"), "GRID_HTTP_MAX_CONNECTIONS": "4", "GRID_HTTP_HEADER_TIMEOUT_S": "60"}
    subprocess.run([sys.executable, "-m", "django", "migrate", "--no-input", "-v", "0"], env=env, check=True)
    url = f"http://127.0.0.1:{lone.facilitator_port}/api/v1/registry"
    log = open(tmp_path / "facilitator.log", "wb")  # noqa: SIM115 (the child writes it)
    server = subprocess.Popen(
        [sys.executable, "-m", "grid.serve", "-p", str(lone.facilitator_port)], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30 * SCALE
        while True:
            try:
                assert httpx.get(url, timeout=5).status_code == 200
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "facilitator.log").read_text()
                time.sleep(0.1)
        idle = [socket.create_connection(("127.0.0.1", lone.facilitator_port)) for _ in range(4)]
        time.sleep(0.2 * SCALE)  # let the server take them
        refused = httpx.get(url, timeout=5)
        assert (refused.status_code, refused.text) == (503, "Service Unavailable")
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 10 * SCALE
        while httpx.get(url, timeout=5).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(10)
        log.close()
