"""The job gateway (executor/gateway.py) between real TLS clients and a real job on loopback."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import socket
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from aiohttp import web
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from executor.certs import make_certificate
from executor.gateway import JobGateway
from protocol.keys import Keypair
from protocol.requests import (
    HEADER_HOTKEY,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    request_payload,
    sign_request,
)
from protocol.streaming import (
    FRAME_DATA,
    FRAME_END,
    FRAMING,
    HEADER_CONTENT_ENCODING,
    HEADER_FRAMING,
    HEADER_REPLY_DIGEST,
    HEADER_REPLY_SIGNATURE,
    HEADER_REQUEST_DIGEST,
    REQUEST_PURPOSE,
    WS_END,
    FrameDecoder,
    ReplySeal,
    Transcript,
    cert_fingerprint,
    request_digest,
    verify_reply,
)

JOB_ID = "job-gateway-test"
CLIENT = Keypair.generate()
OTHER = Keypair.generate()
BIG = 10 * 1024 * 1024
CHUNK = 64 * 1024


def pattern(size: int) -> bytes:
    block = bytes(range(256)) * (CHUNK // 256)
    return (block * (size // len(block) + 1))[:size]


# -- the job -----------------------------------------------------------------------------------------


class Job:
    """A streaming job on loopback: it counts every request that reaches it."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self.port = 0
        self.app = web.Application(middlewares=[self._count], client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_route("*", "/echo{tail:.*}", self._echo)
        self.app.router.add_get("/big", self._big)
        self.app.router.add_get("/sse", self._sse)
        self.app.router.add_get("/chunked", self._chunked)
        self.app.router.add_get("/gzip", self._gzip)
        self.app.router.add_get("/crash", self._crash)
        self.app.router.add_get("/slow", self._slow)
        self.app.router.add_get("/ws", self._ws)

    @property
    def total(self) -> int:
        return sum(self.hits.values())

    @web.middleware
    async def _count(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        self.hits[request.path] += 1
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        return await handler(request)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _sse(self, request: web.Request) -> web.Response:
        return web.Response(text="data: hi\n\n", content_type="text/event-stream")

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(
            body=body,
            headers={"X-Echo-Method": request.method, "X-Echo-Target": request.raw_path, "X-Grid-Framing": "fake"},
        )

    async def _big(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = BIG
        await response.prepare(request)
        data = pattern(BIG)
        for start in range(0, BIG, CHUNK):
            await response.write(data[start : start + CHUNK])
        return response

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"one,", b"two,", b"three"):
            await response.write(part)
        await response.write_eof()
        return response

    async def _gzip(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Encoding": "gzip"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(gzip.compress(b"squeezed"))
        await response.write_eof()
        return response

    async def _crash(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(3):
            await response.write(b"x" * 1000)
        assert request.transport is not None
        request.transport.abort()  # the job dies in the middle of its reply
        return response

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        while True:
            await response.write(b"tick")
            await asyncio.sleep(0.02)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data == "close-please":
                    await ws.close(code=4000, message=b"bye")
                elif msg.data == "crash":
                    assert request.transport is not None
                    request.transport.abort()
                else:
                    await ws.send_str("echo:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        return ws


@pytest.fixture
async def job() -> AsyncIterator[Job]:
    running = Job()
    runner = web.AppRunner(running.app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    running.port = runner.addresses[0][1]
    yield running
    await runner.cleanup()


@pytest.fixture
async def gateway(job: Job) -> AsyncIterator[JobGateway]:
    gw = JobGateway(JOB_ID, job.port, CLIENT.hotkey, port=0, max_request_bytes=8 * 1024 * 1024)
    await gw.start()
    yield gw
    await gw.stop()


def pinned(cert_pem: str) -> ssl.SSLContext:
    """Trust exactly this certificate (hostname checked against its subjectAltName)."""
    return ssl.create_default_context(cadata=cert_pem)


@pytest.fixture
async def client(gateway: JobGateway) -> AsyncIterator[httpx.AsyncClient]:
    base = f"https://127.0.0.1:{gateway.port}"
    async with httpx.AsyncClient(verify=pinned(gateway.cert_pem), base_url=base, timeout=20) as c:
        yield c


# -- helpers -----------------------------------------------------------------------------------------


def signed(method: str, target: str, body: bytes = b"", key: Keypair = CLIENT, **kwargs: object) -> dict[str, str]:
    path, _, query = target.partition("?")
    return sign_request(key, method, path, query, body, purpose=REQUEST_PURPOSE, **kwargs)  # type: ignore[arg-type]


def digest_of(headers: dict[str, str], method: str, target: str, body: bytes = b"") -> str:
    path, _, query = target.partition("?")
    sha = hashlib.sha256(body).hexdigest()
    return request_digest(request_payload(method, path, query, sha, headers[HEADER_TIMESTAMP], headers[HEADER_NONCE]))


def buffered_seal(gateway: JobGateway, response: httpx.Response, expected_request: str) -> ReplySeal:
    """Check a buffered reply's signature over its body; returns the seal."""
    assert HEADER_FRAMING not in response.headers
    seal = ReplySeal(
        request_digest=response.headers[HEADER_REQUEST_DIGEST],
        status=response.status_code,
        reply_digest=response.headers[HEADER_REPLY_DIGEST],
        signature=response.headers[HEADER_REPLY_SIGNATURE],
    )
    assert seal.request_digest == expected_request
    assert seal.reply_digest == hashlib.sha256(response.content).hexdigest()
    verify_reply(gateway.job_keypair.hotkey, JOB_ID, seal)
    return seal


async def streamed(
    client: httpx.AsyncClient, method: str, target: str, body: bytes = b""
) -> tuple[httpx.Response, bytes, ReplySeal, str]:
    """Send a signed request whose reply is framed; returns the reply, its data, its seal, the request digest."""
    headers = signed(method, target, body)
    decoder, data, seal = FrameDecoder(), bytearray(), None
    async with client.stream(method, target, content=body, headers=headers) as response:
        assert response.headers[HEADER_FRAMING] == FRAMING
        async for chunk in response.aiter_raw():
            for kind, payload in decoder.feed(chunk):
                if kind == FRAME_DATA:
                    data += payload
                else:
                    assert kind == FRAME_END
                    seal = ReplySeal.model_validate_json(payload)
    assert seal is not None and decoder.ended and decoder.pending == 0
    expected = digest_of(headers, method, target, body)
    assert seal.request_digest == expected == response.headers[HEADER_REQUEST_DIGEST]
    assert seal.status == response.status_code
    return response, bytes(data), seal, expected


def ws_url(gateway: JobGateway, path: str = "/ws") -> str:
    return f"wss://127.0.0.1:{gateway.port}{path}"


# -- TLS and readiness -------------------------------------------------------------------------------


async def test_readiness_names_the_gateway_its_key_and_its_certificate(gateway: JobGateway) -> None:
    readiness = gateway.readiness
    assert readiness.job_id == JOB_ID
    assert (readiness.address, readiness.port) == ("127.0.0.1", gateway.port)
    assert readiness.job_public_key == gateway.job_keypair.hotkey
    assert readiness.cert_fingerprint == cert_fingerprint(ssl.PEM_cert_to_DER_cert(gateway.cert_pem))


async def test_a_client_trusting_another_certificate_fails_the_handshake(gateway: JobGateway) -> None:
    other = make_certificate("127.0.0.1")
    async with httpx.AsyncClient(verify=pinned(other.cert_pem), timeout=5) as c:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await c.get(f"https://127.0.0.1:{gateway.port}/health", headers=signed("GET", "/health"))


# -- buffered and streamed replies -------------------------------------------------------------------


async def test_a_buffered_reply_is_signed_over_its_body(
    gateway: JobGateway, job: Job, client: httpx.AsyncClient
) -> None:
    target, body = "/echo/a%20b?x=1&y=%2F", b'{"hello": "job"}'
    headers = signed("POST", target, body)
    response = await client.post(target, content=body, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["X-Echo-Method"] == "POST"
    assert response.headers["X-Echo-Target"] == target  # raw path and query, untouched
    assert "fake" not in response.headers.get_list(HEADER_FRAMING)  # the job cannot speak for the gateway
    buffered_seal(gateway, response, digest_of(headers, "POST", target, body))
    seen = job.headers[-1]
    assert seen["content-type"] == "application/json"
    assert not [name for name in seen if name.startswith("x-grid-")]


async def test_a_large_reply_is_streamed_in_frames_and_sealed(gateway: JobGateway, client: httpx.AsyncClient) -> None:
    response, data, seal, _ = await streamed(client, "GET", "/big")
    assert response.status_code == 200
    assert data == pattern(BIG)
    assert (seal.complete, seal.error) == (True, None)
    assert seal.reply_digest == hashlib.sha256(data).hexdigest()
    verify_reply(gateway.job_keypair.hotkey, JOB_ID, seal)


@pytest.mark.parametrize(("path", "expected"), [("/sse", b"data: hi\n\n"), ("/chunked", b"one,two,three")])
async def test_event_streams_and_replies_of_unknown_length_are_streamed(
    gateway: JobGateway, client: httpx.AsyncClient, path: str, expected: bytes
) -> None:
    _, data, seal, _ = await streamed(client, "GET", path)
    assert data == expected
    assert seal.complete and seal.reply_digest == hashlib.sha256(expected).hexdigest()
    verify_reply(gateway.job_keypair.hotkey, JOB_ID, seal)


async def test_a_streamed_reply_keeps_its_content_encoding_apart(
    gateway: JobGateway, client: httpx.AsyncClient
) -> None:
    response, data, seal, _ = await streamed(client, "GET", "/gzip")
    assert "content-encoding" not in response.headers
    assert response.headers[HEADER_CONTENT_ENCODING] == "gzip"
    assert gzip.decompress(data) == b"squeezed"
    verify_reply(gateway.job_keypair.hotkey, JOB_ID, seal)


async def test_a_reply_that_breaks_off_ends_with_a_signed_incomplete_seal(
    gateway: JobGateway, client: httpx.AsyncClient
) -> None:
    _, data, seal, _ = await streamed(client, "GET", "/crash")
    assert data == b"x" * 3000
    assert seal.complete is False
    assert seal.error and "broke off" in seal.error
    assert seal.reply_digest == hashlib.sha256(data).hexdigest()
    verify_reply(gateway.job_keypair.hotkey, JOB_ID, seal)


async def test_a_large_request_body_is_spooled_and_forwarded_whole(
    gateway: JobGateway, client: httpx.AsyncClient
) -> None:
    body = pattern(3 * 1024 * 1024)
    _, data, seal, _ = await streamed(client, "PUT", "/echo", body)
    assert data == body
    verify_reply(gateway.job_keypair.hotkey, JOB_ID, seal)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked upload
        for start in range(0, len(body), CHUNK):
            yield body[start : start + CHUNK]

    headers = signed("POST", "/echo", body)
    async with client.stream("POST", "/echo", content=chunks(), headers=headers) as response:
        assert response.status_code == 200
        decoder, received = FrameDecoder(), bytearray()
        async for chunk in response.aiter_raw():
            received += b"".join(p for kind, p in decoder.feed(chunk) if kind == FRAME_DATA)
    assert received == body


async def test_a_job_that_does_not_answer_gets_a_signed_502(job: Job) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    async with JobGateway(JOB_ID, closed_port, CLIENT.hotkey, port=0) as gw:
        async with httpx.AsyncClient(verify=pinned(gw.cert_pem), timeout=10) as c:
            headers = signed("GET", "/health")
            response = await c.get(f"https://127.0.0.1:{gw.port}/health", headers=headers)
        assert response.status_code == 502
        assert response.json()["code"] == "job_unreachable"
        assert buffered_seal(gw, response, digest_of(headers, "GET", "/health")).status == 502


async def test_expect_100_continue_is_answered_after_the_headers_are_checked(gateway: JobGateway) -> None:
    body = b"z" * 5000
    async with aiohttp.ClientSession() as session:
        url = f"https://127.0.0.1:{gateway.port}/echo"
        ctx = pinned(gateway.cert_pem)
        async with session.post(url, data=body, headers=signed("POST", "/echo", body), expect100=True, ssl=ctx) as r:
            assert r.status == 200 and await r.read() == body
        async with session.post(url, data=body, expect100=True, ssl=ctx) as r:
            assert r.status == 401


# -- refusals ----------------------------------------------------------------------------------------


def _tampered(field: str) -> tuple[str, str, bytes, dict[str, str], str]:
    """(method, target, body, headers, expected code): signed for POST /echo?a=1 b"body", then changed."""
    method, target, body = "POST", "/echo?a=1", b"body"
    headers = signed(method, target, body)
    code = "bad_signature"
    if field == "method":
        method = "PUT"
    elif field == "path":
        target = "/echo2?a=1"
    elif field == "query":
        target = "/echo?a=2"
    elif field == "body":
        body = b"bodY"
    elif field == "timestamp":
        headers[HEADER_TIMESTAMP] = f"{float(headers[HEADER_TIMESTAMP]) + 1:.3f}"
    elif field == "nonce":
        headers[HEADER_NONCE] = "0" * 32
    elif field == "hotkey":
        headers[HEADER_HOTKEY], code = OTHER.hotkey, "wrong_key"
    elif field == "signature":
        sig = headers[HEADER_SIGNATURE]
        headers[HEADER_SIGNATURE] = ("1" if sig[0] == "0" else "0") + sig[1:]
    return method, target, body, headers, code


@pytest.mark.parametrize("field", ["method", "path", "query", "body", "timestamp", "nonce", "hotkey", "signature"])
async def test_a_tampered_request_is_refused_and_never_reaches_the_job(
    job: Job, client: httpx.AsyncClient, field: str
) -> None:
    method, target, body, headers, code = _tampered(field)
    response = await client.request(method, target, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert job.total == 0


@pytest.mark.parametrize("missing", [HEADER_HOTKEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE, "all"])
async def test_a_request_missing_signature_headers_is_refused(
    job: Job, client: httpx.AsyncClient, missing: str
) -> None:
    headers = {} if missing == "all" else {k: v for k, v in signed("GET", "/health").items() if k != missing}
    response = await client.get("/health", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "missing_signature"
    assert job.total == 0


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        (lambda: signed("GET", "/health", now=time.time() - 120), "stale_request"),
        (lambda: signed("GET", "/health", now=time.time() + 120), "stale_request"),
        (lambda: {**signed("GET", "/health"), HEADER_TIMESTAMP: "soon"}, "stale_request"),
        (lambda: {**signed("GET", "/health"), HEADER_NONCE: "short"}, "bad_nonce"),
        (lambda: signed("GET", "/health", key=OTHER), "wrong_key"),
    ],
    ids=["past", "future", "not-a-number", "bad-nonce", "another-key"],
)
async def test_stale_malformed_or_foreign_requests_are_refused(
    job: Job, client: httpx.AsyncClient, headers, code: str
) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/health", headers=headers())
    assert (response.status_code, response.json()["code"]) == (401, code)
    assert job.total == 0


async def test_a_replayed_request_is_refused(job: Job, client: httpx.AsyncClient) -> None:
    headers = signed("POST", "/echo", b"once")
    assert (await client.post("/echo", content=b"once", headers=headers)).status_code == 200
    response = await client.post("/echo", content=b"once", headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, "replayed")
    assert job.hits["/echo"] == 1


async def test_a_body_over_the_limit_is_refused_with_413_and_not_forwarded(job: Job) -> None:
    async with JobGateway(JOB_ID, job.port, CLIENT.hotkey, port=0, max_request_bytes=64 * 1024) as gw:
        base = f"https://127.0.0.1:{gw.port}"
        async with httpx.AsyncClient(verify=pinned(gw.cert_pem), base_url=base, timeout=10) as c:
            body = b"y" * (100 * 1024)
            response = await c.post("/echo", content=body, headers=signed("POST", "/echo", body))
            assert (response.status_code, response.json()["code"]) == (413, "request_too_large")

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while spooling
                for _ in range(10):
                    yield b"y" * 10240

            response = await c.post("/echo", content=chunks(), headers=signed("POST", "/echo", body))
            assert (response.status_code, response.json()["code"]) == (413, "request_too_large")
            exact = b"y" * (64 * 1024)
            response = await c.post("/echo", content=exact, headers=signed("POST", "/echo", exact))
            assert response.status_code == 200
    assert job.hits["/echo"] == 1


async def test_terminate_sets_the_event_only_when_signed(
    gateway: JobGateway, job: Job, client: httpx.AsyncClient
) -> None:
    assert (await client.post("/_grid/terminate")).status_code == 401
    assert (await client.get("/_grid/terminate", headers=signed("GET", "/_grid/terminate"))).status_code == 405
    assert (await client.post("/_grid/other", headers=signed("POST", "/_grid/other"))).status_code == 404
    assert not gateway.terminated.is_set()
    headers = signed("POST", "/_grid/terminate")
    response = await client.post("/_grid/terminate", headers=headers)
    assert response.status_code == 202
    buffered_seal(gateway, response, digest_of(headers, "POST", "/_grid/terminate"))
    assert gateway.terminated.is_set()
    assert job.total == 0


# -- websockets --------------------------------------------------------------------------------------


async def test_a_websocket_is_relayed_with_prefixes_and_sealed_on_request(gateway: JobGateway) -> None:
    headers = signed("GET", "/ws")
    transcript = Transcript()
    async with ws_connect(ws_url(gateway), ssl=pinned(gateway.cert_pem), additional_headers=headers) as ws:
        assert ws.response.headers[HEADER_REQUEST_DIGEST] == digest_of(headers, "GET", "/ws")
        for message, reply in [("hello", "decho:hello"), (b"\x00\x01\x02", b"d\x02\x01\x00"), ("", "decho:")]:
            await ws.send(message)
            transcript.add("client", message)
            assert await ws.recv() == reply
            transcript.add("job", reply[1:])
        await ws.send(WS_END)
        sealed = await ws.recv()
        assert isinstance(sealed, str) and sealed.startswith("s")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1000
    seal = ReplySeal.model_validate_json(sealed[1:])
    assert (seal.status, seal.complete, seal.error) == (101, True, None)
    assert seal.request_digest == digest_of(headers, "GET", "/ws")
    assert seal.reply_digest == transcript.hexdigest()
    verify_reply(gateway.job_keypair.hotkey, JOB_ID, seal)


@pytest.mark.parametrize(("last", "complete", "close_code"), [("close-please", True, 4000), ("crash", False, 1011)])
async def test_a_websocket_the_job_ends_is_sealed_with_how_it_ended(
    gateway: JobGateway, last: str, complete: bool, close_code: int
) -> None:
    transcript = Transcript()
    ctx = pinned(gateway.cert_pem)
    async with ws_connect(ws_url(gateway), ssl=ctx, additional_headers=signed("GET", "/ws")) as ws:
        await ws.send("hi")
        transcript.add("client", "hi")
        assert await ws.recv() == "decho:hi"
        transcript.add("job", "echo:hi")
        await ws.send(last)
        transcript.add("client", last)
        sealed = await ws.recv()
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == close_code
    seal = ReplySeal.model_validate_json(sealed[1:])
    assert seal.complete is complete
    assert (seal.error is None) is complete
    assert seal.reply_digest == transcript.hexdigest()
    verify_reply(gateway.job_keypair.hotkey, JOB_ID, seal)


async def test_an_unsigned_websocket_upgrade_is_refused(gateway: JobGateway, job: Job) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(ws_url(gateway), ssl=pinned(gateway.cert_pem)):
            pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["code"] == "missing_signature"
    assert job.total == 0


# -- many clients, and stopping ----------------------------------------------------------------------


async def test_concurrent_clients_each_get_their_own_signed_reply(
    gateway: JobGateway, job: Job, client: httpx.AsyncClient
) -> None:
    async def one(i: int) -> None:
        body = f"request {i}".encode() * (i + 1)
        if i % 4 == 0:  # some streamed
            _, data, seal, _ = await streamed(client, "GET", "/chunked")
            assert data == b"one,two,three"
            verify_reply(gateway.job_keypair.hotkey, JOB_ID, seal)
            return
        headers = signed("POST", f"/echo?i={i}", body)
        response = await client.post(f"/echo?i={i}", content=body, headers=headers)
        assert response.content == body
        buffered_seal(gateway, response, digest_of(headers, "POST", f"/echo?i={i}", body))

    await asyncio.gather(*(one(i) for i in range(32)))
    assert job.total == 32


async def test_stop_seals_and_closes_every_session_and_frees_the_port(job: Job) -> None:
    gw = JobGateway(JOB_ID, job.port, CLIENT.hotkey, port=0)
    await gw.start()
    port, ctx = gw.port, pinned(gw.cert_pem)
    async with (
        httpx.AsyncClient(verify=ctx, base_url=f"https://127.0.0.1:{port}", timeout=10) as c,
        ws_connect(ws_url(gw), ssl=ctx, additional_headers=signed("GET", "/ws")) as ws,
    ):
        await ws.send("hi")
        assert await ws.recv() == "decho:hi"

        async def slow_reply() -> ReplySeal:
            decoder = FrameDecoder()
            async with c.stream("GET", "/slow", headers=signed("GET", "/slow")) as response:
                async for chunk in response.aiter_raw():
                    for kind, payload in decoder.feed(chunk):
                        if kind == FRAME_END:
                            return ReplySeal.model_validate_json(payload)
            raise AssertionError("no END frame")

        reading = asyncio.create_task(slow_reply())
        while job.hits["/slow"] == 0:
            await asyncio.sleep(0.01)
        await gw.stop()
        seal = await asyncio.wait_for(reading, 5)
        assert (seal.complete, seal.error) == (False, "the gateway stopped")
        verify_reply(gw.job_keypair.hotkey, JOB_ID, seal)
        sealed = await ws.recv()
        ws_seal = ReplySeal.model_validate_json(sealed[1:])
        assert (ws_seal.complete, ws_seal.error) == (False, "the gateway stopped")
        verify_reply(gw.job_keypair.hotkey, JOB_ID, ws_seal)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1001
    await gw.stop()  # idempotent
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
