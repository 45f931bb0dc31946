"""A real HTTP server on loopback for the data-plane tests: routes set by tests, requests recorded."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from executor.datapolicy import DataPolicy


@dataclass
class Route:
    """What the server answers on one path. ``fail_times`` first answers ``fail_status``."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    fail_times: int = 0
    fail_status: int = 500
    send_length: bool = True


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Server:
    """A threaded HTTP server whose routes and received requests tests set and read."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.received: list[Received] = []
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, body: bytes = b"", **options: Any) -> str:
        self.routes[path] = Route(body=body, **options)
        return self.url(path)

    def bodies(self, path: str) -> list[bytes]:
        return [item.body for item in self.received if item.path == path]


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", ""):
                chunks = []
                while size := int(self.rfile.readline().strip(), 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _answer(self) -> None:
            path = self.path.split("?", 1)[0]
            body = self._read_body() if self.command in ("PUT", "POST") else b""
            with server.lock:
                server.hits[path] += 1
                count = server.hits[path]
                server.received.append(Received(self.command, path, dict(self.headers), body))
            route = server.routes.get(path)
            if route is None:
                status, reply, headers = 404, b"no such route", {}
            elif count <= route.fail_times:
                status, reply, headers = route.fail_status, b"try again later", {}
            else:
                status, reply, headers = route.status, route.body, route.headers
            if route is not None and route.delay:
                time.sleep(route.delay)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if route is None or route.send_length:
                self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(reply)

        do_GET = do_PUT = do_POST = _answer

    return Handler


@contextlib.contextmanager
def serve() -> Iterator[Server]:
    server = Server()
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def policy(**overrides: Any) -> DataPolicy:
    """A fast policy for loopback tests: private addresses allowed unless a test says otherwise."""
    options: dict[str, Any] = {
        "allow_private_urls": True,
        "retry_delay_s": 0.01,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 2.0,
        **overrides,
    }
    return DataPolicy(**options)
