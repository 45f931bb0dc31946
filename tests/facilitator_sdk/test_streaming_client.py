"""StreamClient and AsyncStreamClient against a job gateway speaking protocol.streaming over TLS.

The test gateway below is written from the contract alone (protocol.streaming and
protocol.requests) and misbehaves on demand (``gateway.mode``), so each check of the clients is
shown to catch what it is for. A few tests at the end run against the executor's real gateway.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import hashlib
import io
import json
import socket
import ssl
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from facilitator_sdk import (
    AsyncStreamClient,
    GridError,
    ReplySignatureError,
    SessionEnded,
    StreamBrokenError,
    StreamClient,
    StreamingConnectionError,
    StreamingTrustError,
    StreamTarget,
)
from protocol.errors import RequestAuthError, SignatureError
from protocol.keys import Keypair
from protocol.messages import StreamingEndpoint
from protocol.requests import verify_request
from protocol.streaming import (
    FRAME_DATA,
    FRAME_END,
    FRAMING,
    HEADER_FRAMING,
    HEADER_REPLY_DIGEST,
    HEADER_REPLY_SIGNATURE,
    HEADER_REQUEST_DIGEST,
    REQUEST_PURPOSE,
    WS_END,
    Evidence,
    Readiness,
    Transcript,
    cert_fingerprint,
    encode_frame,
    request_digest,
    sign_readiness,
    sign_reply,
    verify_evidence,
)

JOB_ID = "job-streaming-1"
MINER = Keypair.generate()
CLIENT_KEY = Keypair.generate()
WAIT = 5.0  # seconds: the upper bound of anything the gateway waits for


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_cert() -> tuple[str, str]:
    """A self-signed P-256 certificate and its key, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test job gateway")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def server_context(cert_pem: str, key_pem: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "cert.pem").write_text(cert_pem)
        (Path(tmp) / "key.pem").write_text(key_pem)
        context.load_cert_chain(Path(tmp) / "cert.pem", Path(tmp) / "key.pem")
    return context


def target_for(
    port: int, cert_pem: str, job_key: Keypair, *, signed_cert: str | None = None, signer: Keypair = MINER
) -> StreamTarget:
    """What the miner signs for a gateway on ``port``; ``signed_cert`` is the certificate it vouches for."""
    readiness = Readiness(
        job_id=JOB_ID,
        address="127.0.0.1",
        port=port,
        job_public_key=job_key.hotkey,
        cert_fingerprint=cert_fingerprint(ssl.PEM_cert_to_DER_cert(signed_cert or cert_pem)),
    )
    return StreamTarget(
        job_id=JOB_ID,
        readiness=readiness,
        cert_pem=cert_pem,
        miner_hotkey=MINER.hotkey,
        miner_signature=sign_readiness(signer, readiness),
    )


class Background:
    """An event loop in a thread, serving aiohttp apps for the tests (sync and async alike)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-gateway", daemon=True)
        self.thread.start()
        self.runners: list[web.BaseRunner] = []

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT * 2)

    def serve(self, handler: Callable[[web.BaseRequest], Any], context: ssl.SSLContext | None = None) -> int:
        async def start() -> int:
            runner = web.ServerRunner(web.Server(handler), shutdown_timeout=0.1)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
            self.runners.append(runner)
            return runner.addresses[0][1]

        return self.run(start())

    def stop(self) -> None:
        for runner in self.runners:
            self.run(runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)


class Gateway:
    """A job gateway from the contract. ``mode`` makes it misbehave:

    buffered ``/echo``: unsigned, bad_signature, tampered_body, tampered_consistent (the digest
    header fits the tampered body), wrong_request, wrong_status, gzip;
    framed ``/tokens?n=``: no_end, broken, bad_seal, tampered_stream, after_end, gzip;
    websocket ``/ws``: no_seal, silent, bad_seal, bad_transcript, no_prefix, chatty. The job side
    of ``/ws`` upper-cases text, reverses bytes, ends the session on "bye", breaks on "crash".
    """

    def __init__(self, background: Background) -> None:
        self.cert_pem, key_pem = make_cert()
        self.job_key = Keypair.generate()
        self.mode: str | None = None
        self.hold = threading.Event()
        self.held: bool | None = None
        self.nonces: set[str] = set()
        self.port = background.serve(self.handle, server_context(self.cert_pem, key_pem))

    def target(self, **options: Any) -> StreamTarget:
        return target_for(self.port, options.pop("cert_pem", self.cert_pem), self.job_key, **options)

    def key(self) -> Keypair:
        return Keypair.generate() if self.mode == "bad_seal" else self.job_key

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path, _, query = request.raw_path.partition("?")
        body = await request.read()
        try:
            signed = verify_request(request.headers, request.method, path, query, body, purpose=REQUEST_PURPOSE)
            if signed.hotkey != CLIENT_KEY.hotkey:
                raise RequestAuthError("not this job's client", code="wrong_key")
            if signed.nonce in self.nonces:
                raise RequestAuthError("replayed", code="replayed")
            self.nonces.add(signed.nonce)
        except RequestAuthError as exc:
            return web.json_response({"code": exc.code, "message": exc.message}, status=401)
        digest = request_digest(signed.payload)
        if path == "/ws":
            return await self.websocket(request, digest)
        if path == "/tokens":
            return await self.tokens(request, digest, int(request.query.get("n", "50")))
        return self.echo(request, digest, body, path, query)

    def echo(self, request: web.BaseRequest, digest: str, body: bytes, path: str, query: str) -> web.Response:
        mode, status = self.mode, 200
        reply = json.dumps(
            {"method": request.method, "path": path, "query": query, "size": len(body), "sha256": sha256(body)}
        ).encode()
        headers = {"Content-Type": "application/json"}
        if mode == "gzip":
            reply, headers["Content-Encoding"] = gzip.compress(reply), "gzip"
        seal = sign_reply(
            Keypair.generate() if mode == "bad_signature" else self.job_key,
            JOB_ID,
            "0" * 64 if mode == "wrong_request" else digest,
            status,
            sha256(reply),
        )
        headers |= {
            HEADER_REQUEST_DIGEST: seal.request_digest,
            HEADER_REPLY_DIGEST: seal.reply_digest,
            HEADER_REPLY_SIGNATURE: seal.signature,
        }
        if mode == "unsigned":
            del headers[HEADER_REPLY_SIGNATURE]
        if mode in ("tampered_body", "tampered_consistent"):
            reply = reply.replace(b'"size": ', b'"size": 1')
        if mode == "tampered_consistent":
            headers[HEADER_REPLY_DIGEST] = sha256(reply)
        if mode == "wrong_status":
            status = 203
        return web.Response(status=status, body=reply, headers=headers)

    async def tokens(self, request: web.BaseRequest, digest: str, n: int) -> web.StreamResponse:
        mode = self.mode
        chunks = [f"token {i}\n".encode() for i in range(n)]
        headers = {HEADER_FRAMING: FRAMING, HEADER_REQUEST_DIGEST: digest, "Content-Type": "text/plain"}
        if mode == "gzip":
            whole = gzip.compress(b"".join(chunks))
            chunks = [whole[i : i + 16] for i in range(0, len(whole), 16)]
            headers["X-Grid-Content-Encoding"] = "gzip"
        response = web.StreamResponse(status=200, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        hasher = hashlib.sha256()
        for i, data in enumerate(chunks):
            if mode == "broken" and i == n // 2:
                break
            await response.write(encode_frame(FRAME_DATA, data))
            if not (mode == "tampered_stream" and i == 1):
                hasher.update(data)
            if i == 0 and request.query.get("hold"):
                self.held = await asyncio.to_thread(self.hold.wait, WAIT)
        if mode != "no_end":
            broken = mode == "broken"
            seal = sign_reply(
                self.key(), JOB_ID, digest, 200, hasher.hexdigest(), complete=not broken,
                error="the job crashed" if broken else None,
            )  # fmt: skip
            await response.write(encode_frame(FRAME_END, seal.to_json()))
        if mode == "after_end":
            await response.write(encode_frame(FRAME_DATA, b"late"))
        await response.write_eof()
        return response

    async def websocket(self, request: web.BaseRequest, digest: str) -> web.WebSocketResponse:
        mode = self.mode
        ws = web.WebSocketResponse()
        ws.headers[HEADER_REQUEST_DIGEST] = digest
        await ws.prepare(request)
        transcript = Transcript()

        async def seal(complete: bool = True, error: str | None = None) -> None:
            reply_digest = sha256(b"another session") if mode == "bad_transcript" else transcript.hexdigest()
            sealed = sign_reply(self.key(), JOB_ID, digest, 101, reply_digest, complete=complete, error=error)
            await ws.send_str("s" + sealed.to_json().decode())

        async def job_says(message: str | bytes) -> None:
            transcript.add("job", message)
            if isinstance(message, bytes):
                await ws.send_bytes(b"d" + message)
            else:
                await ws.send_str("d" + message)

        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == WS_END:
                if mode == "silent":
                    continue
                if mode == "chatty":
                    await job_says("late")
                if mode != "no_seal":
                    await seal()
                break
            transcript.add("client", msg.data)
            if msg.type == WSMsgType.BINARY:
                await job_says(msg.data[::-1])
            elif msg.data == "bye":
                await job_says("bye!")
                await seal()
                break
            elif msg.data == "crash":
                await seal(complete=False, error="the job's websocket broke")
                break
            elif mode == "no_prefix":
                await ws.send_str(msg.data)
            else:
                await job_says(msg.data.upper())
        await ws.close()
        return ws


@pytest.fixture(scope="module")
def background() -> Iterator[Background]:
    background = Background()
    yield background
    background.stop()


@pytest.fixture(scope="module")
def module_gateway(background: Background) -> Gateway:
    return Gateway(background)


@pytest.fixture
def gateway(module_gateway: Gateway) -> Gateway:
    module_gateway.mode, module_gateway.held = None, None
    module_gateway.hold.clear()
    return module_gateway


@pytest.fixture
def client(gateway: Gateway) -> Iterator[StreamClient]:
    with StreamClient(gateway.target(), CLIENT_KEY, timeout=WAIT, seal_timeout=WAIT) as client:
        yield client


@pytest.fixture
async def aclient(gateway: Gateway) -> AsyncIterator[AsyncStreamClient]:
    async with AsyncStreamClient(gateway.target(), CLIENT_KEY, timeout=WAIT, seal_timeout=WAIT) as client:
        yield client


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- trust -----------------------------------------------------------------------------------------


def test_readiness_not_signed_by_the_miner_is_refused_before_anything_is_sent(gateway: Gateway) -> None:
    with pytest.raises(StreamingTrustError, match=f"not signed by miner {MINER.hotkey}"):
        StreamClient(gateway.target(signer=Keypair.generate()), CLIENT_KEY)


def test_certificate_other_than_the_signed_one_is_refused(gateway: Gateway) -> None:
    other_pem, _ = make_cert()
    target = gateway.target(cert_pem=other_pem, signed_cert=gateway.cert_pem)
    with pytest.raises(StreamingTrustError, match="is not the one its miner signed"):
        StreamClient(target, CLIENT_KEY)


def test_readiness_for_another_job_is_refused(gateway: Gateway) -> None:
    target = gateway.target().model_copy(update={"job_id": "another-job"})
    with pytest.raises(StreamingTrustError, match="the readiness is for job job-streaming-1, not another-job"):
        StreamClient(target, CLIENT_KEY)


def test_target_from_a_streaming_endpoint(gateway: Gateway) -> None:
    target = gateway.target()
    endpoint = {
        "readiness": target.readiness.model_dump(mode="json"),
        "cert_pem": target.cert_pem,
        "miner_hotkey": MINER.hotkey,
        "miner_signature": target.miner_signature,
    }
    assert StreamTarget.from_endpoint(JOB_ID, endpoint, miner_hotkey=MINER.hotkey) == target
    assert StreamTarget.from_endpoint(JOB_ID, StreamingEndpoint.model_validate(endpoint)) == target
    with pytest.raises(StreamingTrustError, match="not by its miner"):
        StreamTarget.from_endpoint(JOB_ID, endpoint, miner_hotkey=Keypair.generate().hotkey)
    with pytest.raises(StreamingTrustError, match="is not signed by its miner"):
        StreamTarget.from_endpoint(JOB_ID, endpoint | {"miner_signature": None})


def test_server_presenting_another_certificate_is_a_connection_error(gateway: Gateway) -> None:
    """The miner vouches for a certificate the server does not have: the TLS pin fails."""
    other_pem, _ = make_cert()
    with StreamClient(gateway.target(cert_pem=other_pem), CLIENT_KEY) as client:
        with pytest.raises(StreamingConnectionError, match="does not present the pinned certificate") as caught:
            client.get("/echo")
        assert caught.value.address == f"https://127.0.0.1:{gateway.port}"
        with pytest.raises(StreamingConnectionError, match="pinned certificate"), client.websocket("/ws"):
            pass


def test_connection_refused_names_the_address(gateway: Gateway) -> None:
    port = closed_port()
    with StreamClient(target_for(port, gateway.cert_pem, gateway.job_key), CLIENT_KEY) as client:
        with pytest.raises(StreamingConnectionError, match=f"cannot reach job {JOB_ID} at https://127.0.0.1:{port}"):
            client.get("/echo")
        with (
            pytest.raises(StreamingConnectionError, match=f"at https://127.0.0.1:{port}"),
            client.websocket("/ws"),
        ):
            pass


# -- buffered replies ------------------------------------------------------------------------------


def test_buffered_reply_verified(client: StreamClient, gateway: Gateway) -> None:
    response = client.post("/echo", params={"q": "a b"}, json={"hello": "world"})
    assert response.status_code == 200
    body = json.dumps({"hello": "world"}, separators=(",", ":")).encode()
    assert response.json() == {
        "method": "POST",
        "path": "/echo",
        "query": "q=a+b",
        "size": len(body),
        "sha256": sha256(body),
    }
    assert response.evidence is not None and response.seal is not None
    assert response.evidence is client.evidence[-1]
    assert response.evidence.reply_body_sha256 == response.seal.reply_digest == sha256(response.content)
    assert response.evidence.request["body_sha256"] == sha256(body)
    assert repr(response) == "<SealedResponse [200 OK] sealed>"


def test_signed_path_is_the_raw_path(client: StreamClient) -> None:
    """The signature covers the path as sent, percent-encoded (the gateway checks that)."""
    response = client.get("/files/a%20b/c")
    assert response.json()["path"] == "/files/a%20b/c"
    assert response.evidence is not None and response.evidence.request["path"] == "/files/a%20b/c"


def test_buffered_reply_content_encoding_is_verified_as_sent(client: StreamClient, gateway: Gateway) -> None:
    gateway.mode = "gzip"
    response = client.get("/echo")
    assert response.json()["method"] == "GET"
    assert response.seal is not None and response.seal.reply_digest != sha256(response.content)  # over the gzip bytes


@pytest.mark.parametrize(
    ("mode", "code", "message"),
    [
        ("unsigned", "unsigned", "unsigned reply 200 from the job's gateway"),
        ("bad_signature", "bad_signature", "the seal is not the job key's signature"),
        ("tampered_body", "digest_mismatch", "is not the one the gateway sealed"),
        ("tampered_consistent", "bad_signature", "the seal is not the job key's signature"),
        ("wrong_request", "request_mismatch", "sealed for another request"),
        ("wrong_status", "bad_signature", "the seal is not the job key's signature"),  # 200 sealed, 203 sent
    ],
)
def test_buffered_reply_tampering_is_caught(
    client: StreamClient, gateway: Gateway, mode: str, code: str, message: str
) -> None:
    gateway.mode = mode
    with pytest.raises(ReplySignatureError, match=message) as caught:
        client.get("/echo")
    assert caught.value.code == code
    assert not client.evidence


def test_gateway_refusal_is_an_unsigned_reply_with_its_status(gateway: Gateway) -> None:
    with StreamClient(gateway.target(), Keypair.generate()) as stranger:
        with pytest.raises(ReplySignatureError, match=r'unsigned reply 401 .*"wrong_key"') as caught:
            stranger.get("/echo")
        assert (caught.value.code, caught.value.status) == ("unsigned", 401)
        with (
            pytest.raises(StreamingConnectionError, match="refused the websocket: 401") as refused,
            stranger.websocket("/ws"),
        ):
            pass
        assert refused.value.status == 401


# -- request bodies --------------------------------------------------------------------------------


def test_iterator_body_needs_its_digest(client: StreamClient) -> None:
    chunks = [b"x" * 1000, b"y" * 10]
    with pytest.raises(TypeError, match="needs body_sha256="):
        client.post("/echo", content=iter(chunks))
    response = client.post("/echo", content=iter(chunks), body_sha256=sha256(b"".join(chunks)))
    assert response.json()["sha256"] == sha256(b"".join(chunks))


def test_iterator_body_with_a_wrong_digest_is_refused_by_the_gateway(client: StreamClient) -> None:
    with pytest.raises(ReplySignatureError, match="unsigned reply 401") as caught:
        client.post("/echo", content=iter([b"data"]), body_sha256=sha256(b"other"))
    assert caught.value.status == 401
    with pytest.raises(ValueError, match="64 lowercase hex"):
        client.post("/echo", content=b"x", body_sha256="ABC")


def test_file_body_is_hashed_then_sent_from_where_it_stands(client: StreamClient) -> None:
    file = io.BytesIO(b"skip" + b"payload" * 1000)
    file.seek(4)
    assert client.put("/echo", content=file).json()["sha256"] == sha256(b"payload" * 1000)


def test_file_that_cannot_seek_needs_its_digest(client: StreamClient) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            return self.data.readinto(buffer)

    with pytest.raises(TypeError, match="cannot seek needs body_sha256="):
        client.post("/echo", content=Pipe(b"piped"))
    assert client.post("/echo", content=Pipe(b"piped"), body_sha256=sha256(b"piped")).json()["size"] == 5


def test_multipart_body_is_signed(client: StreamClient) -> None:
    response = client.post("/echo", data={"a": "1"}, files={"f": ("f.txt", io.BytesIO(b"file"))})
    assert response.json()["size"] > 0


def test_evidence_is_bounded(gateway: Gateway) -> None:
    with StreamClient(gateway.target(), CLIENT_KEY, keep_evidence=2) as client:
        responses = [client.get("/echo", params={"i": i}) for i in range(3)]
        assert list(client.evidence) == [responses[1].evidence, responses[2].evidence]


# -- streamed replies ------------------------------------------------------------------------------


def test_streamed_reply_yields_data_as_it_comes(client: StreamClient, gateway: Gateway) -> None:
    with client.stream("GET", "/tokens", params={"n": 200, "hold": 1}) as reply:
        assert reply.framed and reply.evidence is None
        chunks = []
        for chunk in reply.iter_bytes():
            if not chunks:
                gateway.hold.set()  # the gateway sends the rest only now
            chunks.append(chunk)
    assert gateway.held is True
    assert b"".join(chunks) == b"".join(f"token {i}\n".encode() for i in range(200))
    assert reply.seal is not None and reply.seal.complete and reply.seal.reply_digest == sha256(b"".join(chunks))
    assert reply.evidence is client.evidence[-1]
    verify_evidence(reply.evidence)


def test_streamed_reply_lines_and_text(client: StreamClient, gateway: Gateway) -> None:
    with client.stream("GET", "/tokens", params={"n": 3}) as reply:
        assert list(reply.iter_lines()) == ["token 0", "token 1", "token 2"]
    gateway.mode = "gzip"
    with client.stream("GET", "/tokens", params={"n": 100}) as reply:
        assert "".join(reply.iter_text()) == "".join(f"token {i}\n" for i in range(100))
    assert reply.evidence is not None


def test_framed_reply_in_a_buffered_call_is_returned_whole(client: StreamClient) -> None:
    response = client.get("/tokens", params={"n": 5})
    assert response.text == "".join(f"token {i}\n" for i in range(5))
    assert response.evidence is not None and response.evidence.reply_body_sha256 is None


@pytest.mark.parametrize(
    ("mode", "code", "message"),
    [
        ("no_end", "no_seal", "the stream ended without its END frame"),
        ("bad_seal", "bad_signature", "the seal is not the job key's signature"),
        ("tampered_stream", "digest_mismatch", "is not what the job sealed"),
        ("after_end", "bad_framing", "data after the end of a framed reply"),
    ],
)
def test_streamed_reply_tampering_is_caught(
    client: StreamClient, gateway: Gateway, mode: str, code: str, message: str
) -> None:
    gateway.mode = mode
    with client.stream("GET", "/tokens", params={"n": 20}) as reply, pytest.raises(ReplySignatureError) as caught:
        for _ in reply.iter_bytes():
            pass
    assert message in str(caught.value)
    assert caught.value.code == code
    assert reply.evidence is None and not client.evidence


def test_broken_stream_raises_with_its_evidence(client: StreamClient, gateway: Gateway) -> None:
    gateway.mode = "broken"
    received = b""
    with (
        pytest.raises(StreamBrokenError, match="the job broke off its reply: the job crashed") as caught,
        client.stream("GET", "/tokens", params={"n": 10}) as reply,
    ):
        for chunk in reply.iter_bytes():
            received += chunk
    assert received == b"".join(f"token {i}\n".encode() for i in range(5))
    evidence = caught.value.evidence
    assert caught.value.error == "the job crashed" and not evidence.seal.complete
    assert reply.evidence is evidence is client.evidence[-1]
    verify_evidence(evidence)


# -- websockets ------------------------------------------------------------------------------------


def test_websocket_round_trip_and_seal(client: StreamClient) -> None:
    with client.websocket("/ws") as ws:
        ws.send("hello")
        assert ws.recv() == "HELLO"
        ws.send(b"\x01\x02d")
        assert ws.recv() == b"d\x02\x01"
        evidence = ws.close()
    assert ws.evidence is evidence is client.evidence[-1]
    assert evidence.seal.status == 101 and ws.transcript.messages == 4
    assert evidence.seal.reply_digest == ws.transcript.hexdigest()
    assert repr(ws) == "<WebSocketSession /ws sealed, 4 messages>"
    verify_evidence(evidence)


def test_websocket_messages_crossing_on_the_wire_still_verify(client: StreamClient) -> None:
    """The gateway sees "a", "A", "b", "B"…; the client another order: each direction is hashed apart."""
    with client.websocket("/ws") as ws:
        for message in "abcde":
            ws.send(message)
        ws.send(b"xy")
        assert [ws.recv() for _ in range(6)] == [*"ABCDE", b"yx"]
    assert ws.evidence is not None and ws.evidence.seal.reply_digest == ws.transcript.hexdigest()


def test_websocket_crossing_far_from_the_end_still_verifies(client: StreamClient) -> None:
    with client.websocket("/ws") as ws:
        ws.send("a")
        ws.send("b")
        assert [ws.recv(), ws.recv()] == ["A", "B"]
        for i in range(150):  # then a long exchange in step
            ws.send(f"m{i}")
            assert ws.recv() == f"M{i}"
    assert ws.evidence is not None and ws.evidence.seal.reply_digest == ws.transcript.hexdigest()


def test_websocket_sealed_on_leaving_the_block(client: StreamClient) -> None:
    with client.websocket("/ws") as ws:
        ws.send("a")
        ws.recv()
    assert ws.evidence is not None and ws.evidence is client.evidence[-1]


def test_websocket_closed_by_the_job_first(client: StreamClient) -> None:
    with client.websocket("/ws") as ws:
        ws.send("one")
        ws.send("bye")
        assert list(ws) == ["ONE", "bye!"]  # iteration stops at the seal
        with pytest.raises(SessionEnded) as caught:
            ws.recv()
        assert caught.value.evidence is ws.evidence
        with pytest.raises(SessionEnded):
            ws.send("more")
    assert ws.close() is ws.evidence is client.evidence[-1]
    verify_evidence(ws.evidence)


def test_websocket_job_broke_off(client: StreamClient) -> None:
    with client.websocket("/ws") as ws:
        ws.send("crash")
        with pytest.raises(StreamBrokenError, match="the job's websocket broke") as caught:
            ws.recv()
    assert ws.evidence is caught.value.evidence
    verify_evidence(caught.value.evidence)


def test_websocket_data_after_end_is_sealed_and_dropped(client: StreamClient, gateway: Gateway) -> None:
    gateway.mode = "chatty"
    with client.websocket("/ws") as ws:
        ws.send("x")
        assert ws.recv() == "X"
    assert ws.dropped == 1 and ws.transcript.messages == 3


@pytest.mark.parametrize(
    ("mode", "code", "message"),
    [
        ("bad_seal", "bad_signature", "the seal is not the job key's signature"),
        ("bad_transcript", "digest_mismatch", "is not what the job sealed"),
        ("no_seal", "no_seal", "the session closed without the job's seal"),
        ("silent", "no_seal", "got no answer in 0.3s"),
    ],
)
def test_websocket_seal_problems_are_caught(gateway: Gateway, mode: str, code: str, message: str) -> None:
    gateway.mode = mode
    with StreamClient(gateway.target(), CLIENT_KEY, seal_timeout=0.3) as client:
        with pytest.raises(ReplySignatureError, match=message) as caught, client.websocket("/ws") as ws:
            ws.send("x")
            assert ws.recv() == "X"
        assert caught.value.code == code and not client.evidence


def test_websocket_message_without_prefix_is_a_protocol_error(client: StreamClient, gateway: Gateway) -> None:
    gateway.mode = "no_prefix"
    with client.websocket("/ws") as ws:
        ws.send("x")
        with pytest.raises(ReplySignatureError, match="a message without a known prefix: 'x'") as caught:
            ws.recv()
    assert caught.value.code == "bad_message"


def test_websocket_end_marker_is_not_a_message(client: StreamClient) -> None:
    with client.websocket("/ws") as ws, pytest.raises(ValueError, match=r"call close\(\)"):
        ws.send(WS_END)


# -- evidence --------------------------------------------------------------------------------------


def _alter(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def alter(data: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        for name in parents:
            data = data[name]
        data[leaf] = value

    return alter


ALTERATIONS = {
    "job_id": _alter("job_id", "another-job"),
    "request.path": _alter("request.path", "/other"),
    "request.body_sha256": _alter("request.body_sha256", "0" * 64),
    "request.nonce": _alter("request.nonce", "a" * 32),
    "seal.status": _alter("seal.status", 500),
    "seal.reply_digest": _alter("seal.reply_digest", "0" * 64),
    "seal.complete": _alter("seal.complete", False),
    "seal.signature": _alter("seal.signature", "0" * 128),
    "readiness.port": _alter("readiness.port", 1),
    "readiness.job_public_key": _alter("readiness.job_public_key", Keypair.generate().hotkey),
    "miner_hotkey": _alter("miner_hotkey", Keypair.generate().hotkey),
    "miner_signature": _alter("miner_signature", "0" * 128),
}


def test_exported_evidence_verifies_for_every_kind_of_reply(client: StreamClient) -> None:
    client.get("/echo")
    client.get("/tokens", params={"n": 3})
    with client.websocket("/ws") as ws:
        ws.send("x")
    assert len(client.evidence) == 3
    for evidence in client.evidence:
        verify_evidence(Evidence.model_validate_json(evidence.model_dump_json()))


@pytest.mark.parametrize("field", ALTERATIONS)
def test_altered_evidence_fails(client: StreamClient, field: str) -> None:
    data = json.loads(client.get("/echo").evidence.model_dump_json())  # type: ignore[union-attr]
    ALTERATIONS[field](data)
    with pytest.raises(SignatureError):
        verify_evidence(Evidence.model_validate(data))


# -- the async twin --------------------------------------------------------------------------------


async def test_async_buffered_reply_verified(aclient: AsyncStreamClient) -> None:
    response = await aclient.post("/echo", content=b"body")
    assert response.json()["sha256"] == sha256(b"body")
    assert response.evidence is aclient.evidence[-1]
    verify_evidence(response.evidence)


async def test_async_file_and_iterator_bodies(aclient: AsyncStreamClient) -> None:
    assert (await aclient.put("/echo", content=io.BytesIO(b"file"))).json()["sha256"] == sha256(b"file")

    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    with pytest.raises(TypeError, match="needs body_sha256="):
        await aclient.post("/echo", content=chunks())
    response = await aclient.post("/echo", content=chunks(), body_sha256=sha256(b"ab"))
    assert response.json()["sha256"] == sha256(b"ab")


@pytest.mark.parametrize(("mode", "code"), [("unsigned", "unsigned"), ("tampered_body", "digest_mismatch")])
async def test_async_buffered_tampering_is_caught(
    aclient: AsyncStreamClient, gateway: Gateway, mode: str, code: str
) -> None:
    gateway.mode = mode
    with pytest.raises(ReplySignatureError) as caught:
        await aclient.get("/echo")
    assert caught.value.code == code


async def test_async_streamed_reply(aclient: AsyncStreamClient, gateway: Gateway) -> None:
    async with aclient.stream("GET", "/tokens", params={"n": 100, "hold": 1}) as reply:
        chunks = []
        async for chunk in reply.aiter_bytes():
            gateway.hold.set()
            chunks.append(chunk)
    assert gateway.held is True
    assert b"".join(chunks) == b"".join(f"token {i}\n".encode() for i in range(100))
    assert reply.evidence is aclient.evidence[-1]


async def test_async_stream_problems(aclient: AsyncStreamClient, gateway: Gateway) -> None:
    gateway.mode = "no_end"
    with pytest.raises(ReplySignatureError, match="without its END frame"):
        async with aclient.stream("GET", "/tokens") as reply:
            await reply.aread()
    gateway.mode = "broken"
    with pytest.raises(StreamBrokenError) as caught:
        await aclient.get("/tokens", params={"n": 4})
    verify_evidence(caught.value.evidence)


async def test_async_websocket_round_trip_and_seal(aclient: AsyncStreamClient) -> None:
    async with aclient.websocket("/ws") as ws:
        await ws.send("hello")
        assert await ws.recv() == "HELLO"
        await ws.send(b"ab")
        assert await ws.recv(timeout=WAIT) == b"ba"
    assert ws.evidence is aclient.evidence[-1]
    verify_evidence(ws.evidence)


async def test_async_websocket_closed_by_the_job_first(aclient: AsyncStreamClient) -> None:
    async with aclient.websocket("/ws") as ws:
        await ws.send("bye")
        assert [message async for message in ws] == ["bye!"]
        with pytest.raises(SessionEnded):
            await ws.recv()
    assert await ws.close() is ws.evidence
    verify_evidence(ws.evidence)


async def test_async_websocket_bad_seal(gateway: Gateway) -> None:
    gateway.mode = "bad_transcript"
    async with AsyncStreamClient(gateway.target(), CLIENT_KEY) as aclient:
        with pytest.raises(ReplySignatureError, match="is not what the job sealed"):
            async with aclient.websocket("/ws") as ws:
                await ws.send("x")


async def test_async_connection_errors(gateway: Gateway) -> None:
    other_pem, _ = make_cert()
    async with AsyncStreamClient(gateway.target(cert_pem=other_pem), CLIENT_KEY) as aclient:
        with pytest.raises(StreamingConnectionError, match="pinned certificate"):
            await aclient.get("/echo")
        with pytest.raises(StreamingConnectionError, match="pinned certificate"):
            async with aclient.websocket("/ws"):
                pass
    port = closed_port()
    async with AsyncStreamClient(target_for(port, gateway.cert_pem, gateway.job_key), CLIENT_KEY) as aclient:
        with pytest.raises(StreamingConnectionError, match=f"127.0.0.1:{port}"):
            await aclient.get("/echo")


def test_errors_are_grid_errors() -> None:
    for error in (StreamingTrustError, StreamingConnectionError, ReplySignatureError, StreamBrokenError, SessionEnded):
        assert issubclass(error, GridError)


# -- against the executor's gateway ----------------------------------------------------------------


async def job_app(request: web.BaseRequest) -> web.StreamResponse:
    """A streaming job behind the real gateway: /hello, /tokens, /gz (gzip, streamed), /ws."""
    if request.path == "/ws":
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.data == "bye":
                break
            await ws.send_str(msg.data.upper())
        await ws.close()
        return ws
    if request.path in ("/tokens", "/gz"):
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        data = b"".join(f"token {i}\n".encode() for i in range(50))
        if request.path == "/gz":
            response.headers["Content-Encoding"] = "gzip"
            data = gzip.compress(data)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(data), 40):
            await response.write(data[i : i + 40])
        await response.write_eof()
        return response
    body = await request.read()
    return web.json_response({"path": request.raw_path, "sha256": sha256(body)})


@pytest.fixture(scope="module")
def real_gateway(background: Background) -> Iterator[Any]:
    gateway_module = pytest.importorskip("executor.gateway")
    upstream = background.serve(job_app)
    gateway = gateway_module.JobGateway(JOB_ID, upstream, CLIENT_KEY.hotkey, port=0)
    background.run(gateway.start())
    yield gateway
    background.run(gateway.stop())


@pytest.fixture
def real_client(real_gateway: Any) -> Iterator[StreamClient]:
    target = target_for(real_gateway.port, real_gateway.cert_pem, real_gateway.job_keypair)
    assert target.readiness == real_gateway.readiness
    with StreamClient(target, CLIENT_KEY, timeout=WAIT, seal_timeout=WAIT) as client:
        yield client


def test_real_gateway_buffered_replies(real_client: StreamClient) -> None:
    assert real_client.get("/files/a%20b", params={"q": "x y"}).json()["path"] == "/files/a%20b?q=x+y"
    file = io.BytesIO(b"0123456789")
    file.seek(2)
    assert real_client.post("/hello", content=file).json()["sha256"] == sha256(b"23456789")
    assert real_client.post("/hello", content=iter([b"ab"]), body_sha256=sha256(b"ab")).json()["sha256"] == sha256(
        b"ab"
    )


def test_real_gateway_streamed_replies(real_client: StreamClient) -> None:
    expected = "".join(f"token {i}\n" for i in range(50))
    for path in ("/tokens", "/gz"):
        with real_client.stream("GET", path) as reply:
            assert reply.framed
            assert "".join(reply.iter_text()) == expected
        assert reply.evidence is not None
        verify_evidence(reply.evidence)


def test_real_gateway_websocket(real_client: StreamClient) -> None:
    with real_client.websocket("/ws") as ws:
        for message in "abc":
            ws.send(message)
        assert [ws.recv() for _ in range(3)] == ["A", "B", "C"]
    assert ws.evidence is not None
    with real_client.websocket("/ws") as ws:
        ws.send("x")
        ws.send("bye")
        assert list(ws) == ["X"]
    assert ws.evidence is not None and ws.evidence.seal.complete
    verify_evidence(ws.evidence)


def test_real_gateway_terminate(real_client: StreamClient, real_gateway: Any) -> None:
    assert real_client.terminate().status_code == 202
    assert real_gateway.terminated.is_set()


async def test_real_gateway_async_twin(real_gateway: Any) -> None:
    target = target_for(real_gateway.port, real_gateway.cert_pem, real_gateway.job_keypair)
    async with AsyncStreamClient(target, CLIENT_KEY, timeout=WAIT) as client:
        async with client.stream("GET", "/gz") as reply:
            assert "".join([text async for text in reply.aiter_text()]).startswith("token 0\n")
        async with client.websocket("/ws") as ws:
            await ws.send("a")
            await ws.send("b")
            assert [await ws.recv(), await ws.recv()] == ["A", "B"]
        assert (await client.terminate()).status_code == 202
    assert len(client.evidence) == 3
