"""A sample streaming job for Gridmarket: an HTTP server, Python standard library only.

A streaming job is an HTTP server that clients call through the miner's signing gateway. The
contract: listen on 127.0.0.1:$PORT (env ``PORT``, or ``--port``; default 8080) and answer
``GET /health`` with 200 once ready. The server speaks HTTP/1.1 with keep-alive, one daemon
thread per connection, logs one line per request to stderr (never bodies), and exits 0 on
SIGTERM or SIGINT (streams still in flight are cut).

Endpoints:

  GET  /health                     200 ``ok`` (503 forever if ECHO_NEVER_READY=1)
  POST /echo                       the request body back, buffered, same Content-Type
  GET  /tokens?n=20&delay=0.05&prompt=...
                                   an LLM-like token stream: chunked text/plain, one word and
                                   a space per chunk, ``delay`` seconds apart (deterministic
                                   for a given prompt)
  GET  /bytes?size=N&chunk=65536   exactly N bytes, byte i being i % 256, chunked
  POST /sha256                     reads a body (Content-Length or chunked) as a stream and
                                   answers {"sha256": "<hex>", "size": <bytes>}
  GET  /crash?after=3&delay=0      starts a chunked reply, sends ``after`` chunks, then ends
                                   the whole process with os._exit(3)
  GET  /ws                         a websocket (RFC 6455) echo: text and binary messages come
                                   back as they are, except text "upper:<text>" which answers
                                   <TEXT>; ping gets pong; fragmented messages are refused
                                   with close code 1003

Run it alone: ``PORT=8080 python3 app.py`` (see README.md).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

NEVER_READY = os.environ.get("ECHO_NEVER_READY") == "1"
MAX_ECHO = 64 * 1024 * 1024  # bytes /echo buffers at most
MAX_WS_MESSAGE = 16 * 1024 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PATTERN = bytes(range(256))
VOCABULARY = (
    *("the", "model", "streams", "tokens", "one", "at", "a", "time", "while", "client", "reads"),
    *("them", "as", "they", "arrive", "through", "signing", "gateway", "on", "decentralized"),
    *("compute", "marketplace", "of", "miners", "and", "validators"),
)


Query = dict[str, list[str]]


class BadRequest(Exception):
    """A request this server refuses with 400 (the message is the response body)."""


def query_number(query: Query, name: str, default: float, low: float, high: float) -> float:
    """The query parameter ``name`` as a number within [low, high], else BadRequest."""
    raw = query.get(name, [None])[0]
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low:.15g} and {high:.15g}")
    return value


def tokens(prompt: str, n: int) -> Iterator[str]:
    """``n`` words drawn from VOCABULARY, the same ones for the same prompt."""
    rng = random.Random(prompt)  # str seeds hash with sha512: stable across processes
    for _ in range(n):
        yield rng.choice(VOCABULARY) + " "


# ---- websocket frames (RFC 6455 §5) ------------------------------------------------------------
class WsClose(Exception):
    """End the websocket with this close code."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, final server frame."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def ws_read_exact(rfile: BinaryIO, n: int) -> bytes:
    data = rfile.read(n)
    if len(data) < n:
        raise EOFError
    return data


def ws_read_frame(rfile: BinaryIO) -> tuple[bool, int, bytes]:
    """(fin, opcode, unmasked payload) of the next client frame; WsClose on protocol errors."""
    b0, b1 = ws_read_exact(rfile, 2)
    fin, opcode, length = bool(b0 & 0x80), b0 & 0x0F, b1 & 0x7F
    if b0 & 0x70:
        raise WsClose(1002, "reserved bits set")
    if not b1 & 0x80:
        raise WsClose(1002, "client frames must be masked")
    if length == 126:
        (length,) = struct.unpack("!H", ws_read_exact(rfile, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", ws_read_exact(rfile, 8))
    if opcode >= 0x8 and (length > 125 or not fin):
        raise WsClose(1002, "bad control frame")
    if length > MAX_WS_MESSAGE:
        raise WsClose(1009, "message too big")
    mask = ws_read_exact(rfile, 4)
    masked = ws_read_exact(rfile, length)
    # XOR with the repeated 4-byte mask, as one big integer operation (fast in pure Python).
    key = (mask * (length // 4 + 1))[:length]
    payload = (int.from_bytes(masked, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return fin, opcode, payload


def ws_reply(opcode: int, payload: bytes) -> tuple[int, bytes]:
    """The echo of one data message."""
    if opcode == 0x1:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise WsClose(1007, "invalid UTF-8") from None
        if text.startswith("upper:"):
            text = text[len("upper:") :].upper()
        return 0x1, text.encode("utf-8")
    return opcode, payload


# ---- the HTTP handler --------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "streaming-echo/1.0"

    def setup(self) -> None:
        super().setup()
        # Small token chunks must leave at once, not wait for Nagle and delayed ACKs.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        sys.stderr.write(f"{stamp} {self.address_string()} {format % args}\n")

    # -- dispatch
    def do_GET(self) -> None:
        self._dispatch(
            {
                "/health": self.health,
                "/tokens": self.stream_tokens,
                "/bytes": self.stream_bytes,
                "/crash": self.crash,
                "/ws": self.websocket,
            }
        )

    def do_POST(self) -> None:
        self._dispatch({"/echo": self.echo, "/sha256": self.sha256})

    def _dispatch(self, routes: dict[str, Callable[[Query], None]]) -> None:
        url = urlsplit(self.path)
        route = routes.get(url.path)
        try:
            if route is None:
                self.close_connection = self.command != "GET"  # an unread body may follow
                self.send_text(HTTPStatus.NOT_FOUND, f"no route {self.command} {url.path}\n")
            else:
                route(parse_qs(url.query))
        except BadRequest as e:
            self.close_connection = True
            try:
                self.send_text(HTTPStatus.BAD_REQUEST, f"{e}\n")
            except OSError:
                pass  # the client is gone already
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left mid-stream

    # -- response helpers
    def send_text(self, status: int, body: str | bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def write_chunk(self, data: bytes | memoryview) -> None:
        # One write per chunk (the socket writer is unbuffered): size line, data, CRLF.
        self.wfile.write(b"".join((b"%x\r\n" % len(data), data, b"\r\n")))

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    # -- request bodies
    def read_body(self) -> Iterator[bytes]:
        """The request body in pieces: Content-Length or chunked (trailers are skipped)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BadRequest("bad chunk size line") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield from self._read_exactly(size)
                self.rfile.readline(8)  # the chunk's CRLF
        else:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                raise BadRequest("bad Content-Length") from None
            yield from self._read_exactly(length)

    def _read_exactly(self, n: int) -> Iterator[bytes]:
        while n > 0:
            piece = self.rfile.read1(min(n, 256 * 1024))
            if not piece:
                raise BadRequest("body ended early")
            n -= len(piece)
            yield piece

    # -- endpoints
    def health(self, query: Query) -> None:
        if NEVER_READY:
            self.send_text(HTTPStatus.SERVICE_UNAVAILABLE, "never ready\n")
        else:
            self.send_text(HTTPStatus.OK, "ok")

    def echo(self, query: Query) -> None:
        declared = self.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > MAX_ECHO:
            self.close_connection = True
            self.send_text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"at most {MAX_ECHO} bytes\n")
            return
        body = bytearray()
        for piece in self.read_body():
            body += piece
            if len(body) > MAX_ECHO:
                raise BadRequest(f"at most {MAX_ECHO} bytes")
        self.send_text(HTTPStatus.OK, bytes(body), self.headers.get("Content-Type", "application/octet-stream"))

    def sha256(self, query: Query) -> None:
        digest, size = hashlib.sha256(), 0
        for piece in self.read_body():
            digest.update(piece)
            size += len(piece)
        reply = json.dumps({"sha256": digest.hexdigest(), "size": size})
        self.send_text(HTTPStatus.OK, reply, "application/json")

    def stream_tokens(self, query: Query) -> None:
        n = int(query_number(query, "n", 20, 0, 100_000))
        delay = query_number(query, "delay", 0.05, 0, 60)
        prompt = query.get("prompt", [""])[0]
        self.start_chunked("text/plain; charset=utf-8")
        for i, token in enumerate(tokens(prompt, n)):
            if i and delay:
                time.sleep(delay)
            self.write_chunk(token.encode())
        self.end_chunked()

    def stream_bytes(self, query: Query) -> None:
        size = int(query_number(query, "size", 0, 0, 1 << 40))
        chunk = int(query_number(query, "chunk", 65536, 1, 16 * 1024 * 1024))
        # Byte i of the stream is i % 256: every chunk is a slice of one precomputed buffer.
        buffer = memoryview(PATTERN * (chunk // 256 + 2))
        self.start_chunked("application/octet-stream")
        sent = 0
        while sent < size:
            n = min(chunk, size - sent)
            start = sent % 256
            self.write_chunk(buffer[start : start + n])
            sent += n
        self.end_chunked()

    def crash(self, query: Query) -> None:
        after = int(query_number(query, "after", 3, 0, 10_000))
        delay = query_number(query, "delay", 0, 0, 60)
        self.start_chunked("text/plain; charset=utf-8")
        for i in range(after):
            self.write_chunk(f"chunk {i}\n".encode())
            if delay:
                time.sleep(delay)
        self.log_message("crashing on purpose after %d chunks (exit 3)", after)
        sys.stderr.flush()
        os._exit(3)

    def websocket(self, query: Query) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "")
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            raise BadRequest("websocket upgrade expected")
        if self.headers.get("Sec-WebSocket-Version") != "13":
            self.close_connection = True
            self.send_response(HTTPStatus.UPGRADE_REQUIRED)
            self.send_header("Sec-WebSocket-Version", "13")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(HTTPStatus.SWITCHING_PROTOCOLS)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", ws_accept(key))
        self.end_headers()
        self.close_connection = True  # after the websocket, the connection is done
        code, messages = self.websocket_loop()
        self.log_message('"%s" websocket closed with %d after %d messages', self.requestline, code, messages)

    def _await_close_reply(self, timeout: float = 2.0) -> None:
        """Read (and drop) what the client still sends until its close frame, as RFC 6455 asks of the
        side that closes first: closing the socket at once could reset the connection before the
        client has read our close frame."""
        self.wfile.flush()
        self.connection.settimeout(timeout)
        try:
            while ws_read_frame(self.rfile)[1] != 0x8:
                pass
        except (EOFError, OSError, WsClose, ValueError):
            pass

    def websocket_loop(self) -> tuple[int, int]:
        """Echo messages until a close; returns (close code, messages echoed)."""
        messages = 0
        try:
            while True:
                fin, opcode, payload = ws_read_frame(self.rfile)
                if opcode == 0x8:  # close: answer with the client's code
                    if len(payload) == 1:
                        raise WsClose(1002, "bad close payload")
                    code = struct.unpack("!H", payload[:2])[0] if payload else 1000
                    self.wfile.write(ws_frame(0x8, struct.pack("!H", code)))
                    return code, messages
                if opcode == 0x9:
                    self.wfile.write(ws_frame(0xA, payload))
                elif opcode == 0xA:
                    continue
                elif opcode == 0x0 or not fin:
                    raise WsClose(1003, "fragmented messages are not supported")
                elif opcode in (0x1, 0x2):
                    self.wfile.write(ws_frame(*ws_reply(opcode, payload)))
                    messages += 1
                else:
                    raise WsClose(1002, f"unknown opcode {opcode}")
        except WsClose as e:
            self.wfile.write(ws_frame(0x8, struct.pack("!H", e.code) + e.reason.encode()[:120]))
            self._await_close_reply()
            return e.code, messages
        except EOFError:
            return 1006, messages  # the client vanished without a close frame


# ---- main --------------------------------------------------------------------------------------
class Server(ThreadingHTTPServer):
    daemon_threads = True  # SIGTERM does not wait for streams in flight
    allow_reuse_address = True
    request_queue_size = 128  # the default backlog (5) drops bursts of connecting clients

    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        try:
            super().process_request(request, client_address)
        except RuntimeError:  # no thread to be had (a pids limit): answer 503 rather than drop
            sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {client_address[0]} 503: no thread left\n")
            try:
                request.settimeout(0.1)
                request.recv(65536)  # the request, so that closing sends FIN, not RST
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    threading.stack_size(512 * 1024)  # one thread per connection: small stacks keep many within a memory limit
    try:
        server = Server((args.host, args.port), Handler)
    except OSError as e:
        print(f"streaming-echo: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever() to return: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ready = " (ECHO_NEVER_READY: /health answers 503)" if NEVER_READY else ""
    print(f"streaming-echo: listening on {args.host}:{args.port}{ready}", file=sys.stderr, flush=True)
    server.serve_forever(poll_interval=0.2)  # how soon a SIGTERM is noticed
    server.server_close()
    print("streaming-echo: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
