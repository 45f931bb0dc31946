"""The job gateway's server: its keys and certificate, start and stop, and each request's way in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

import aiohttp
from aiohttp import web
from yarl import URL

from executor.certs import Certificate, make_certificate, server_context
from executor.gateway.auth import _refusal, _Refused, _Spool, check_headers
from executor.gateway.forward import GRID_PREFIX, Forwarding, _Stream
from executor.gateway.relay import Relay, _WsSession
from protocol.errors import RequestAuthError
from protocol.keys import Keypair
from protocol.requests import (
    MAX_SKEW_S,
    NonceStore,
    NonceStoreFull,
    verify_request,
)
from protocol.streaming import (
    REQUEST_PURPOSE,
    Readiness,
    request_digest,
)

__all__ = ["JobGateway"]

logger = logging.getLogger("executor.gateway")


class JobGateway(Forwarding, Relay):
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
        check_headers(headers, now, self.client_streaming_key, self._nonces)
