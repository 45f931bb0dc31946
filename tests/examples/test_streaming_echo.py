"""The sample streaming job examples/streaming_echo/app.py, run as a subprocess on a free port."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

APP = Path(__file__).resolve().parents[2] / "examples" / "streaming_echo" / "app.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """app.py in a subprocess, its stderr in a file."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port = free_port()
        self.log = tmp_path / f"app-{self.port}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(APP), "--port", str(self.port)],
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.wait_listening()

    def wait_listening(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"app.py exited: {self.log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        pytest.fail(f"app.py did not listen on {self.port} within {timeout}s")

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def get(self, path: str) -> tuple[http.client.HTTPResponse, bytes]:
        c = self.conn()
        c.request("GET", path)
        response = c.getresponse()
        return response, response.read()

    def raw_chunks(self, path: str) -> tuple[bytes, list[bytes], list[float]]:
        """GET over a raw socket: (head, the chunks as framed on the wire, their arrival times)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
            f = s.makefile("rb")
            head = b""
            while (line := f.readline()) not in (b"\r\n", b""):
                head += line
            chunks, times = [], []
            while True:
                size = int(f.readline().strip(), 16)
                data = f.read(size)
                f.read(2)
                if size == 0:
                    return head, chunks, times
                chunks.append(data)
                times.append(time.monotonic())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    server = App(tmp_path_factory.mktemp("streaming"))
    yield server
    assert server.stop() == 0  # SIGTERM: a clean exit


def test_health(app: App) -> None:
    response, body = app.get("/health")
    assert (response.status, body) == (200, b"ok")


def test_echo_keeps_body_and_content_type(app: App) -> None:
    c = app.conn()
    for body in (b'{"a": 1}', os.urandom(100_000)):
        c.request("POST", "/echo", body=body, headers={"Content-Type": "application/x-test"})
        response = c.getresponse()
        assert response.read() == body
        assert response.getheader("Content-Type") == "application/x-test"
        assert response.getheader("Content-Length") == str(len(body))


def test_tokens_one_word_per_chunk_with_delay(app: App) -> None:
    start = time.monotonic()
    head, chunks, times = app.raw_chunks("/tokens?n=5&delay=0.05&prompt=hi")
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert b"Content-Type: text/plain" in head
    assert len(chunks) == 5
    assert all(c.endswith(b" ") and c.strip() and b" " not in c.strip() for c in chunks)
    assert times[-1] - start >= 4 * 0.05
    assert times[-1] - times[0] >= 3 * 0.05  # streamed, not sent at once at the end
    _, again = app.get("/tokens?n=5&delay=0&prompt=hi")
    assert again == b"".join(chunks)  # deterministic per prompt


def test_bytes_exact_size_and_pattern(app: App) -> None:
    head, chunks, _ = app.raw_chunks("/bytes?size=200000&chunk=65536")
    assert b"Content-Length" not in head
    assert [len(c) for c in chunks] == [65536, 65536, 65536, 3392]
    assert b"".join(chunks) == bytes(i % 256 for i in range(200_000))
    _, body = app.get("/bytes?size=1000&chunk=300")  # chunks not a multiple of 256
    assert body == bytes(i % 256 for i in range(1000))


def test_sha256_of_plain_and_chunked_bodies(app: App) -> None:
    data = os.urandom(300_000)
    want = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    c = app.conn()
    c.request("POST", "/sha256", body=data)
    assert json.loads(c.getresponse().read()) == want
    pieces = [data[i : i + 70_000] for i in range(0, len(data), 70_000)]
    c.request("POST", "/sha256", body=iter(pieces), encode_chunked=True)
    response = c.getresponse()
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(response.read()) == want


def test_keep_alive_across_streams(app: App) -> None:
    c = app.conn()
    for path in ("/health", "/tokens?n=2&delay=0", "/bytes?size=70000", "/health"):
        c.request("GET", path)
        assert c.getresponse().read()
        sock = c.sock
        assert sock is not None
    c.request("GET", "/health")
    c.getresponse().read()
    assert c.sock is sock  # one connection for all


def test_errors(app: App) -> None:
    assert app.get("/nope")[0].status == 404
    assert app.get("/tokens?n=abc")[0].status == 400
    assert app.get("/bytes?size=-1")[0].status == 400
    assert app.get("/ws")[0].status == 400  # not an upgrade


def test_websocket_echo(app: App) -> None:
    with connect(f"ws://127.0.0.1:{app.port}/ws", open_timeout=5) as ws:
        ws.send("hello ✓")
        assert ws.recv(timeout=5) == "hello ✓"
        ws.send("upper:from the app")
        assert ws.recv(timeout=5) == "FROM THE APP"
        blob = os.urandom(100_000)  # a 64-bit length frame
        ws.send(blob)
        assert ws.recv(timeout=5) == blob
        assert ws.ping(b"p").wait(5)
    assert ws.close_code == 1000


def test_websocket_refuses_fragments(app: App) -> None:
    # The app may close on the first fragment, before the client sends the last one.
    with connect(f"ws://127.0.0.1:{app.port}/ws", open_timeout=5) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.send(["frag", "mented"])
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003


def test_crash_mid_stream_ends_the_process(tmp_path: Path) -> None:
    crashing = App(tmp_path)
    c = crashing.conn()
    c.request("GET", "/crash?after=3")
    response = c.getresponse()
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert cut.value.partial == b"chunk 0\nchunk 1\nchunk 2\n"
    assert crashing.proc.wait(timeout=5) == 3


def test_never_ready(tmp_path: Path) -> None:
    never = App(tmp_path, ECHO_NEVER_READY="1")
    try:
        assert [never.get("/health")[0].status for _ in range(2)] == [503, 503]
    finally:
        assert never.stop() == 0
