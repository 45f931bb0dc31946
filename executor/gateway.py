"""The job gateway: an HTTPS + websocket reverse proxy in front of one streaming job (DESIGN.md §5).

The wire contract is :mod:`protocol.streaming`; this module is its server side.

* **TLS.** A fresh self-signed certificate (:mod:`executor.certs`) whose sha256 goes into
  :attr:`JobGateway.readiness`; the miner signs that, the client pins the certificate.
* **Requests.** Every request must carry the headers of :func:`protocol.requests.sign_request`
  made with the client's streaming key and :data:`~protocol.streaming.REQUEST_PURPOSE`. The
  headers (presence, key, timestamp, nonce format, replay) are checked before the body is read,
  so unsigned floods cost nothing; the body is then spooled (memory up to 1 MiB, then a temporary
  file; over ``max_request_bytes`` → 413) while hashed, and the signature is checked over its
  digest, with the freshness of the moment the headers arrived (a slow upload does not go stale).
  Refusals are 401 ``{"code", "message"}`` (``missing_signature``, ``bad_signature``,
  ``stale_request``, ``bad_nonce``, ``replayed``, ``wrong_key``); the job never sees them.
  Nonces are remembered for ``2 × MAX_SKEW_S``.
* **Forwarding.** Same method, raw path, raw query and body to ``http://127.0.0.1:<upstream>``,
  minus hop-by-hop headers, ``Host`` and every ``X-Grid-*`` header. Paths under ``/_grid/`` are
  the gateway's own: ``POST /_grid/terminate`` sets :attr:`JobGateway.terminated` (202).
* **Replies** are signed with the job key (:func:`protocol.streaming.sign_reply`):

  - a reply with ``Content-Length`` ≤ ``buffer_limit`` that is not ``text/event-stream`` is
    *buffered*: the job's headers and body plus ``X-Grid-Request-Digest``,
    ``X-Grid-Reply-Digest`` (sha256 of the body as sent) and ``X-Grid-Reply-Signature``;
  - anything else is *streamed*: ``X-Grid-Framing: grid-frames/1``, ``X-Grid-Request-Digest``,
    then DATA frames of the job's bytes as they come and one END frame holding the
    :class:`~protocol.streaming.ReplySeal` (``complete=False`` with an ``error`` when the job's
    reply broke off). A job's ``Content-Encoding`` would not apply to the framed body, so on a
    streamed reply it is moved to ``X-Grid-Content-Encoding`` (it applies to the DATA bytes);
  - the job unreachable → 502 ``{"code": "job_unreachable"}``, signed like a buffered reply
    (the gateway's own errors after a verified request are all signed that way).

* **Websockets.** The upgrade GET is verified like any request, then the gateway connects to the
  job's websocket at the same path and relays: client → job as is, job → client prefixed
  (``"d"`` / ``b"d"``), every message in the :class:`~protocol.streaming.Transcript`.
  **Ending a session:** the client sends the text message :data:`~protocol.streaming.WS_END`
  (``"\\x00grid:end"``, never forwarded to the job); the gateway stops relaying, sends
  ``"s" + seal`` (status 101, ``reply_digest`` = the transcript, ``complete=True``) and closes
  with 1000. When the job closes, the gateway sends the seal (``complete=True``) and closes with
  the job's code; when the job's connection breaks, the seal says ``complete=False`` and the
  close code is 1011; when the gateway stops, ``complete=False`` and 1001. A client that closes
  the websocket itself (or vanishes) gets no seal: nothing can be sent after its close frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from typing import IO

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from executor.certs import Certificate, make_certificate, server_context
from protocol.errors import ReplayedRequest, RequestAuthError
from protocol.keys import Keypair
from protocol.requests import (
    MAX_SKEW_S,
    NonceStore,
    NonceStoreFull,
    SignedRequest,
    check_fresh,
    check_nonce,
    signature_headers,
    verify_request,
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
    TERMINATE_PATH,
    WS_DATA_PREFIX,
    WS_END,
    WS_SEAL_PREFIX,
    Readiness,
    ReplySeal,
    Transcript,
    encode_frame,
    request_digest,
    sign_reply,
)

__all__ = ["JobGateway"]

logger = logging.getLogger(__name__)

GRID_PREFIX = "/_grid/"
CLOSE_HANDSHAKE_S = 1.0  # how long a websocket close waits for the peer's answer (ms on a sane link)
MEMORY_SPOOL_BYTES = 1024 * 1024
READ_CHUNK = 256 * 1024
REPLY_CHUNK = 1024 * 1024  # at most this many bytes per DATA frame (well under MAX_FRAME_BYTES)
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED = frozenset({"host", "content-length", "expect"})
_WS_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
)
_REPLY_NOT_COPIED = frozenset({"content-length"})


class _Refused(Exception):
    """A request the gateway answers itself, unsigned (it was never verified)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# -- request bodies --------------------------------------------------------------------------------


class _Spool:
    """A request body: in memory up to ``MEMORY_SPOOL_BYTES``, then in a temporary file."""

    def __init__(self, directory: str | None) -> None:
        self._directory = directory
        self._chunks: list[bytes] = []
        self._file: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self.size = 0

    async def fill(self, stream: aiohttp.StreamReader, limit: int) -> None:
        while chunk := await stream.read(READ_CHUNK):
            self.size += len(chunk)
            if self.size > limit:
                raise _Refused(413, "request_too_large", f"the request body is over {limit} bytes")
            self._hash.update(chunk)
            if self._file is None and self.size <= MEMORY_SPOOL_BYTES:
                self._chunks.append(chunk)
                continue
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self._directory, prefix="grid-gateway-")  # noqa: SIM115
                pending, self._chunks = self._chunks, []
                await asyncio.to_thread(self._file.writelines, pending)
            await asyncio.to_thread(self._file.write, chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def payload(self) -> bytes | AsyncIterator[bytes]:
        if self._file is None:
            return b"".join(self._chunks)
        return self._read_file(self._file)

    @staticmethod
    async def _read_file(fh: IO[bytes]) -> AsyncIterator[bytes]:
        await asyncio.to_thread(fh.seek, 0)
        while chunk := await asyncio.to_thread(fh.read, READ_CHUNK):
            yield chunk

    def close(self) -> None:
        self._chunks = []
        if self._file is not None:
            self._file.close()
            self._file = None


# -- headers ---------------------------------------------------------------------------------------


def _connection_tokens(headers: CIMultiDictProxy[str]) -> set[str]:
    """Header names listed in ``Connection`` (hop-by-hop too, RFC 9110 §7.6.1)."""
    tokens: set[str] = set()
    for value in headers.getall("Connection", []):
        tokens.update(token.strip().lower() for token in value.split(",") if token.strip())
    return tokens


def _forward_headers(headers: CIMultiDictProxy[str], *, websocket: bool = False) -> CIMultiDict[str]:
    """The client's headers as the job gets them."""
    drop = _HOP_BY_HOP | _NOT_FORWARDED | _connection_tokens(headers) | (_WS_HANDSHAKE if websocket else set())
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lower = name.lower()
        if lower in drop or lower.startswith("x-grid-"):
            continue
        out.add(name, value)
    return out


def _reply_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The job's reply headers as the client gets them (the gateway adds its own ``X-Grid-*``)."""
    drop = _HOP_BY_HOP | _REPLY_NOT_COPIED | _connection_tokens(headers)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lower = name.lower()
        if lower in drop or lower.startswith("x-grid-"):
            continue
        out.add(name, value)
    return out


def _sendable_close_code(code: int | None, fallback: int) -> int:
    if code is not None and (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        return code
    return fallback


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"[:300]


# -- websocket sessions ----------------------------------------------------------------------------


class _WsSession:
    """One relayed websocket: how it ended decides the seal."""

    def __init__(self) -> None:
        self.transcript = Transcript()
        self.lock = asyncio.Lock()  # held while a job message is recorded and relayed, and to seal
        self.done = asyncio.Event()
        self.outcome: str | None = None  # end | job_closed | job_failed | client_closed | stopped
        self.error: str | None = None
        self.job_close_code: int | None = None
        self.closed = asyncio.Event()  # the handler is done with both websockets

    def finish(self, outcome: str, error: str | None = None, job_close_code: int | None = None) -> None:
        if self.outcome is None:
            self.outcome, self.error, self.job_close_code = outcome, error, job_close_code
            self.done.set()


class _Stopped(Exception):
    """Raised into a streamed reply's pending read when the gateway stops."""


class _Stream:
    """A streamed reply in flight: :meth:`stop` breaks its read off, ``done`` is set once it ended."""

    def __init__(self, upstream: aiohttp.ClientResponse) -> None:
        self.upstream = upstream
        self.done = asyncio.Event()

    def stop(self) -> None:
        self.upstream.content.set_exception(_Stopped())


# -- the gateway -----------------------------------------------------------------------------------


class JobGateway:
    """HTTPS + websocket reverse proxy in front of one streaming job, signing every reply.

    ``port=0`` binds an ephemeral port; :attr:`port` holds the real one after :meth:`start`.
    """

    def __init__(
        self,
        job_id: str,
        upstream_port: int,
        client_streaming_key: str,
        *,
        bind: str = "127.0.0.1",
        port: int,
        address: str | None = None,
        max_request_bytes: int = 1024**3,
        buffer_limit: int = 1024 * 1024,
        max_message_bytes: int = 16 * 1024 * 1024,
        upstream_connections: int = 100,
        max_nonces: int = 200_000,
        spool_dir: str | None = None,
        shutdown_timeout: float = 2.0,
    ) -> None:
        self.job_id = job_id
        self.upstream_port = upstream_port
        self.client_streaming_key = client_streaming_key.lower()
        self.bind = bind
        self.port = port
        self.address = address or bind
        self.max_request_bytes = max_request_bytes
        self.buffer_limit = buffer_limit
        self.max_message_bytes = max_message_bytes
        self.upstream_connections = upstream_connections
        self.spool_dir = spool_dir
        self.shutdown_timeout = shutdown_timeout
        self.job_keypair = Keypair.generate()
        self.certificate: Certificate = make_certificate(self.address)
        self.terminated = asyncio.Event()
        self._nonces = NonceStore(2 * MAX_SKEW_S, max_nonces)
        self._upstream = URL.build(scheme="http", host="127.0.0.1", port=upstream_port)
        self._runner: web.ServerRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._websockets: set[_WsSession] = set()
        self._streams: set[_Stream] = set()  # streamed replies in flight
        self._started = False
        self._stopped = False

    def __repr__(self) -> str:
        return f"<JobGateway {self.job_id} {self.bind}:{self.port} → 127.0.0.1:{self.upstream_port}>"

    # -- public --------------------------------------------------------------------------------

    @property
    def cert_pem(self) -> str:
        return self.certificate.cert_pem

    @property
    def readiness(self) -> Readiness:
        if not self.port:
            raise RuntimeError("the gateway has no port yet: start() it first")
        return Readiness(
            job_id=self.job_id,
            address=self.address,
            port=self.port,
            job_public_key=self.job_keypair.hotkey,
            cert_fingerprint=self.certificate.fingerprint,
        )

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("the gateway was already started")
        self._started = True
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.upstream_connections, limit_per_host=self.upstream_connections),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=self.shutdown_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port, ssl_context=server_context(self.certificate))
        try:
            await site.start()
        except BaseException:
            await self._close()
            raise
        self.port = self._runner.addresses[0][1]
        logger.info("job gateway for %s on %s:%s → 127.0.0.1:%s", self.job_id, self.bind, self.port, self.upstream_port)

    async def stop(self) -> None:
        """Stop listening, seal and close open websockets, break off streamed replies. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await self._close()

    async def _close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            for site in list(runner.sites):
                await site.stop()  # no new connections
        for stream in list(self._streams):
            stream.stop()  # the reply's next read raises: it seals what it sent and ends
        for session in list(self._websockets):
            session.finish("stopped", "the gateway stopped")
        waits = [session.closed.wait() for session in self._websockets]
        waits += [stream.done.wait() for stream in self._streams]
        if waits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.shutdown_timeout):
                    await asyncio.gather(*waits)
        if self._session is not None:
            await self._session.close()  # breaks off replies still streaming (sealed incomplete)
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> JobGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- requests ------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        received_at = time.time()
        target = request.raw_path
        path, _, query = target.partition("?")
        if not path.startswith("/"):
            return _refusal(400, "bad_request", "the request target must be a path")
        spool = _Spool(self.spool_dir)
        try:
            self._check_headers(request.headers, received_at)
            length = request.content_length
            if length is not None and length > self.max_request_bytes:
                raise _Refused(413, "request_too_large", f"the request body is over {self.max_request_bytes} bytes")
            if request.headers.get("Expect", "").lower() == "100-continue":
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await spool.fill(request.content, self.max_request_bytes)
            signed = verify_request(
                request.headers,
                request.method,
                path,
                query,
                now=received_at,
                purpose=REQUEST_PURPOSE,
                body_sha256=spool.sha256,
            )
            self._nonces.claim(signed.nonce)
        except NonceStoreFull as exc:
            spool.close()
            logger.warning("job %s: refused %s %s: %s", self.job_id, request.method, path[:200], exc.code)
            return _refusal(429, exc.code, exc.message)
        except RequestAuthError as exc:
            spool.close()
            logger.warning("job %s: refused %s %s: %s", self.job_id, request.method, path[:200], exc.code)
            return _refusal(401, exc.code, exc.message)
        except _Refused as exc:
            spool.close()
            logger.warning("job %s: refused %s %s: %s", self.job_id, request.method, path[:200], exc.code)
            return _refusal(exc.status, exc.code, exc.message)
        try:
            digest = request_digest(signed.payload)
            if path.startswith(GRID_PREFIX):
                return await self._own(request, path, digest)
            if request.headers.get("Upgrade", "").lower() == "websocket" and request.method == "GET":
                return await self._websocket(request, target, digest)
            return await self._forward(request, target, spool, signed, digest)
        finally:
            spool.close()

    def _check_headers(self, headers: Mapping[str, str], now: float) -> None:
        """What can be refused before reading the body (``verify_request`` checks it all again)."""
        hotkey, timestamp, nonce, _ = signature_headers(headers)
        if hotkey.lower() != self.client_streaming_key:
            raise RequestAuthError("not signed by this job's client streaming key", code="wrong_key")
        check_nonce(nonce)
        check_fresh(timestamp, now)
        if self._nonces.seen(nonce):
            raise ReplayedRequest()

    def _signed(
        self,
        status: int,
        body: bytes,
        digest: str,
        headers: CIMultiDict[str] | None = None,
        *,
        content_type: str | None = "application/json",
    ) -> web.Response:
        """A buffered reply, sealed."""
        seal = sign_reply(self.job_keypair, self.job_id, digest, status, hashlib.sha256(body).hexdigest())
        out: CIMultiDict[str] = headers if headers is not None else CIMultiDict()
        if content_type is not None and "Content-Type" not in out:
            out["Content-Type"] = content_type
        out[HEADER_REQUEST_DIGEST] = digest
        out[HEADER_REPLY_DIGEST] = seal.reply_digest
        out[HEADER_REPLY_SIGNATURE] = seal.signature
        return web.Response(status=status, body=body, headers=out)

    def _signed_error(self, status: int, code: str, message: str, digest: str) -> web.Response:
        return self._signed(status, json.dumps({"code": code, "message": message}).encode(), digest)

    async def _own(self, request: web.BaseRequest, path: str, digest: str) -> web.StreamResponse:
        if path != TERMINATE_PATH:
            return self._signed_error(404, "not_found", f"no gateway endpoint {path[:100]}", digest)
        if request.method != "POST":
            return self._signed_error(405, "method_not_allowed", "terminate with POST", digest)
        logger.info("job %s: the client asked to terminate", self.job_id)
        self.terminated.set()
        return self._signed(202, json.dumps({"status": "terminating"}).encode(), digest)

    async def _forward(
        self, request: web.BaseRequest, target: str, spool: _Spool, signed: SignedRequest, digest: str
    ) -> web.StreamResponse:
        assert self._session is not None
        headers = _forward_headers(request.headers)
        if spool.size or request.content_length is not None or request.method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(spool.size)
        url = URL(f"{self._upstream}{target}", encoded=True)
        try:
            upstream = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=spool.payload() if spool.size else None,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.warning("job %s: unreachable: %s", self.job_id, _describe(exc))
            return self._signed_error(502, "job_unreachable", f"the job did not answer: {_describe(exc)}", digest)
        try:
            if self._buffered(request, upstream):
                try:
                    body = await upstream.read()
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    message = f"the job's reply broke off: {_describe(exc)}"
                    return self._signed_error(502, "job_reply_broken", message, digest)
                return self._signed(upstream.status, body, digest, _reply_headers(upstream.headers), content_type=None)
            return await self._stream(request, upstream, digest)
        finally:
            upstream.release()

    def _buffered(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse) -> bool:
        if request.method == "HEAD" or upstream.status in (204, 304) or upstream.status < 200:
            return True
        length = upstream.content_length
        if length is None or length > self.buffer_limit:
            return False
        return upstream.content_type != "text/event-stream"

    async def _stream(
        self, request: web.BaseRequest, upstream: aiohttp.ClientResponse, digest: str
    ) -> web.StreamResponse:
        headers = _reply_headers(upstream.headers)
        encodings = headers.popall("Content-Encoding", [])
        if encodings:
            headers[HEADER_CONTENT_ENCODING] = ", ".join(encodings)
        headers[HEADER_FRAMING] = FRAMING
        headers[HEADER_REQUEST_DIGEST] = digest
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        hasher = hashlib.sha256()
        error: str | None = None
        stream = _Stream(upstream)
        self._streams.add(stream)
        try:
            while True:
                try:
                    chunk = await upstream.content.read(REPLY_CHUNK)
                except _Stopped:
                    error = "the gateway stopped"
                    break
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    error = f"the job's reply broke off: {_describe(exc)}"
                    logger.warning("job %s: %s", self.job_id, error)
                    break
                if not chunk:
                    break
                hasher.update(chunk)
                try:
                    await response.write(encode_frame(FRAME_DATA, chunk))
                except ConnectionError:
                    logger.info("job %s: the client went away during a streamed reply", self.job_id)
                    upstream.close()
                    return response
            await self._seal_stream(response, upstream.status, digest, hasher.hexdigest(), error)
            return response
        finally:
            self._streams.discard(stream)
            stream.done.set()

    async def _seal_stream(
        self, response: web.StreamResponse, status: int, digest: str, reply_digest: str, error: str | None
    ) -> None:
        seal = sign_reply(
            self.job_keypair, self.job_id, digest, status, reply_digest, complete=error is None, error=error
        )
        with contextlib.suppress(ConnectionError):
            await response.write(encode_frame(FRAME_END, seal.to_json()))
            await response.write_eof()

    # -- websockets ----------------------------------------------------------------------------

    async def _websocket(self, request: web.BaseRequest, target: str, digest: str) -> web.StreamResponse:
        assert self._session is not None
        client_ws = web.WebSocketResponse(max_msg_size=self.max_message_bytes, timeout=5.0)
        if not client_ws.can_prepare(request).ok:
            return self._signed_error(400, "bad_websocket", "not a valid websocket upgrade", digest)
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            job_ws = await self._session.ws_connect(
                URL(f"{self._upstream}{target}", encoded=True),
                headers=_forward_headers(request.headers, websocket=True),
                protocols=protocols,
                max_msg_size=self.max_message_bytes,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_HANDSHAKE_S),
            )
        except aiohttp.WSServerHandshakeError as exc:
            message = f"the job refused the websocket ({exc.status})"
            return self._signed_error(502, "job_refused_websocket", message, digest)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.warning("job %s: unreachable: %s", self.job_id, _describe(exc))
            return self._signed_error(502, "job_unreachable", f"the job did not answer: {_describe(exc)}", digest)
        session = _WsSession()
        self._websockets.add(session)
        try:
            client_ws = web.WebSocketResponse(
                max_msg_size=self.max_message_bytes,
                timeout=CLOSE_HANDSHAKE_S,
                protocols=(job_ws.protocol,) if job_ws.protocol else (),
            )
            client_ws.headers[HEADER_REQUEST_DIGEST] = digest
            await client_ws.prepare(request)
            await self._relay(session, client_ws, job_ws, digest)
            return client_ws
        finally:
            if not job_ws.closed:
                with contextlib.suppress(Exception):
                    await job_ws.close()
            self._websockets.discard(session)
            session.closed.set()

    async def _relay(
        self,
        session: _WsSession,
        client_ws: web.WebSocketResponse,
        job_ws: aiohttp.ClientWebSocketResponse,
        digest: str,
    ) -> None:
        pumps = [
            asyncio.create_task(self._client_to_job(session, client_ws, job_ws)),
            asyncio.create_task(self._job_to_client(session, client_ws, job_ws)),
        ]
        try:
            await session.done.wait()
            if session.outcome == "client_closed":
                return  # nothing can be sent after the client's close frame
            seal: ReplySeal | None = None
            try:
                async with asyncio.timeout(5.0):
                    async with session.lock:  # a job message being relayed finishes first, and is sealed
                        complete = session.outcome in ("end", "job_closed")
                        seal = sign_reply(
                            self.job_keypair,
                            self.job_id,
                            digest,
                            101,
                            session.transcript.hexdigest(),
                            complete=complete,
                            error=None if complete else session.error,
                        )
                        await client_ws.send_str(WS_SEAL_PREFIX + seal.to_json().decode())
            except (ConnectionError, RuntimeError, TimeoutError) as exc:
                logger.info("job %s: could not send the websocket seal: %s", self.job_id, _describe(exc))
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            if session.outcome == "job_closed":
                code = _sendable_close_code(session.job_close_code, 1000)
            else:
                code = {"end": 1000, "stopped": 1001}.get(session.outcome or "", 1011)
            with contextlib.suppress(Exception):
                await client_ws.close(code=code)
            with contextlib.suppress(Exception):
                await job_ws.close(code=1000 if session.outcome in ("end", "client_closed") else 1001)

    async def _client_to_job(
        self, session: _WsSession, client_ws: web.WebSocketResponse, job_ws: aiohttp.ClientWebSocketResponse
    ) -> None:
        try:
            while True:
                msg = await client_ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    if msg.data == WS_END:
                        session.finish("end")
                        return
                    session.transcript.add("client", msg.data)
                    await job_ws.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    session.transcript.add("client", msg.data)
                    await job_ws.send_bytes(msg.data)
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    session.finish("client_closed")
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if client_ws.closed:
                session.finish("client_closed")
            session.finish("job_failed", f"relaying to the job failed: {_describe(exc)}")
        finally:
            session.finish("job_failed", "the relay stopped")  # no-op unless nothing else ended it

    async def _job_to_client(
        self, session: _WsSession, client_ws: web.WebSocketResponse, job_ws: aiohttp.ClientWebSocketResponse
    ) -> None:
        try:
            while True:
                msg = await job_ws.receive()
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    async with session.lock:
                        if session.outcome is not None:
                            return
                        session.transcript.add("job", msg.data)
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await client_ws.send_str(WS_DATA_PREFIX + msg.data)
                        else:
                            await client_ws.send_bytes(WS_DATA_PREFIX.encode() + msg.data)
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    session.finish("job_closed", job_close_code=job_ws.close_code)
                    return
                else:  # CLOSED or ERROR: the connection broke
                    error = job_ws.exception() or msg.data
                    session.finish("job_failed", f"the job's websocket broke: {error or 'connection lost'}"[:300])
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if client_ws.closed:
                session.finish("client_closed")
            session.finish("job_failed", f"relaying to the client failed: {_describe(exc)}")
        finally:
            session.finish("job_failed", "the relay stopped")  # no-op unless nothing else ended it


def _refusal(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)
