"""Calling a streaming job directly: signed requests, verified replies (DESIGN.md §5).

A streaming job answers at its gateway; the miner vouches for the gateway's key and certificate
(:class:`StreamTarget`). The clients check that word before sending anything, trust only that
certificate, sign every request with the job's streaming key (the one in the spec), and check
every reply against the job key's seal::

    with StreamClient(target, streaming_key) as job:
        print(job.get("/health").json())                # buffered: checked before it is returned
        with job.stream("POST", "/generate", json={"prompt": "hi"}) as reply:
            for chunk in reply.iter_bytes():            # data as it comes; the seal checked at the end
                ...
        with job.websocket("/ws") as ws:                # close() asks for the seal and checks it
            ws.send("hello")
            print(ws.recv())
        report = job.evidence[-1].model_dump_json()     # provable to anyone (verify_evidence)

Request bodies: bytes, text, ``json=``, ``data=`` and ``files=`` are signed as built; a seekable
binary file is read twice (hashed, then sent from where it stood); any other streamed body (an
iterator) needs ``body_sha256=``, the sha256 of what it will yield.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from facilitator_sdk._streaming_base import (
    CHUNK_SIZE,
    CLOSE_TIMEOUT,
    DEFAULT_TIMEOUT,
    MAX_WS_MESSAGE,
    SEAL_TIMEOUT,
    BaseStreamClient,
    ReplyCheck,
    SealedResponse,
    SessionCheck,
    StreamTarget,
    file_sha256,
    is_file,
)
from facilitator_sdk.errors import GridError, ReplySignatureError, SessionEnded, StreamBrokenError
from protocol.keys import Keypair
from protocol.stream_caller import KEEP_EVIDENCE
from protocol.streaming import TERMINATE_PATH, WS_END, Evidence, ReplySeal, Transcript

__all__ = [
    "AsyncStreamClient",
    "AsyncWebSocketSession",
    "SealedResponse",
    "StreamClient",
    "StreamTarget",
    "WebSocketSession",
]

_ERROR_BODY = 1024


class StreamClient(BaseStreamClient):
    """Talks to one streaming job: ``StreamClient(target, streaming_key)``.

    Args:
        target: the job's endpoint as its miner signed it.
        keypair: the client's streaming key for this job (its hotkey is the spec's ``streaming_public_key``).
        timeout: httpx's timeout (connect, and between reads), also the websocket opening timeout.
        seal_timeout: how long :meth:`WebSocketSession.close` waits for the seal.
        keep_evidence: how many verified replies ``evidence`` keeps (the latest).

    Raises:
        StreamingTrustError: the miner did not sign this readiness, or ``cert_pem`` is not the signed certificate.
    """

    def __init__(
        self,
        target: StreamTarget,
        keypair: Keypair,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        seal_timeout: float = SEAL_TIMEOUT,
        keep_evidence: int = KEEP_EVIDENCE,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(target, keypair, timeout=timeout, seal_timeout=seal_timeout, keep_evidence=keep_evidence)
        self._http = httpx.Client(
            base_url=self.base_url, verify=self.ssl_context, timeout=timeout, transport=transport, trust_env=False
        )

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, url: str, **kwargs: Any) -> SealedResponse:
        """Send a signed request and return the reply once read whole and verified.

        Keyword arguments are those of :meth:`stream`.

        Raises:
            ReplySignatureError: the reply is not sealed by the job's key as received.
            StreamBrokenError: the job broke off its reply.
            StreamingConnectionError: the gateway could not be reached.
        """
        with self.stream(method, url, **kwargs) as response:
            response.read()
        return response

    def get(self, url: str, **kwargs: Any) -> SealedResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> SealedResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> SealedResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> SealedResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> SealedResponse:
        return self.request("DELETE", url, **kwargs)

    def terminate(self) -> SealedResponse:
        """Ask the gateway to end the job now (``POST /_grid/terminate``); the job then completes as usual.

        Raises:
            StreamingError: the gateway refused (a sealed 4xx/5xx reply).
        """
        return self._terminated(self.post(TERMINATE_PATH))

    @contextlib.contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        headers: Any = None,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        body_sha256: str | None = None,
    ) -> Iterator[SealedResponse]:
        """Send a signed request; the reply's body is checked as it is read (see :class:`SealedResponse`).

        Args:
            body_sha256: the sha256 (hex) of a body given as an iterator, which is signed before it is sent.

        Raises:
            TypeError: an iterator body without ``body_sha256``.
            ReplySignatureError: an unsigned reply (``code="unsigned"``: often the gateway refusing
                the request), or, while reading, one whose seal does not hold.
            StreamingConnectionError: the gateway could not be reached.
        """
        if is_file(content):
            # Sent as chunks from where it stands (httpx would size a file from its start).
            body_sha256 = body_sha256 or file_sha256(content)
            content = iter(functools.partial(content.read, CHUNK_SIZE), b"")
        request, payload = self._prepare(
            method, url, body_sha256=body_sha256, params=params, headers=headers, content=content, data=data,
            files=files, json=json,
        )  # fmt: skip
        try:
            origin = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._connection_error(exc) from exc
        with contextlib.closing(origin):
            self._check_response_peer(origin)
            if not ReplyCheck.is_sealed(origin.headers):
                raise self.unsigned(origin.status_code, _prefix(origin.iter_raw()))
            response = SealedResponse(origin, ReplyCheck(self, payload, origin.status_code, origin.headers))
            with contextlib.closing(response):
                yield response

    @contextlib.contextmanager
    def websocket(self, path: str, *, params: Any = None, headers: Any = None) -> Iterator[WebSocketSession]:
        """Open a signed websocket session; leaving the block asks for its seal and checks it.

        Raises:
            StreamingConnectionError: the gateway could not be reached or refused the upgrade (``status``).
            ReplySignatureError: on leaving, no valid seal over the session's transcript.
        """
        url, payload, upgrade_headers = self._ws_prepare(path, params, headers)
        with contextlib.ExitStack() as stack:
            try:
                connection = stack.enter_context(
                    connect(
                        url, ssl=self.ssl_context, additional_headers=upgrade_headers, open_timeout=self.timeout,
                        close_timeout=CLOSE_TIMEOUT, max_size=MAX_WS_MESSAGE, proxy=None,
                    )
                )  # fmt: skip
            except InvalidStatus as exc:
                raise self._refused(exc) from exc
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                raise self._connection_error(exc) from exc
            self._check_peer(connection.socket)
            with WebSocketSession(connection, SessionCheck(self, payload), self.seal_timeout) as session:
                yield session


class _Session:
    """What both websocket sessions share: state, the transcript, the result."""

    def __init__(self, check: SessionCheck, seal_timeout: float) -> None:
        self._check, self._seal_timeout = check, seal_timeout
        self.evidence: Evidence | None = None
        self.ended = False
        self.dropped = 0  # job messages that came after close() asked for the seal

    def __repr__(self) -> str:
        state = "sealed" if self.evidence is not None else "ended" if self.ended else "open"
        return f"<{type(self).__name__} {self._check.payload['path']} {state}, {self.transcript.messages} messages>"

    @property
    def transcript(self) -> Transcript:
        return self._check.transcript

    @property
    def seal(self) -> ReplySeal | None:
        return self.evidence.seal if self.evidence is not None else None

    def _outgoing(self, message: str | bytes) -> None:
        if self.ended:
            raise SessionEnded(self.evidence) if self.evidence else GridError("the session has ended")
        if message == WS_END:
            raise ValueError("WS_END is the session's end marker: call close()")
        self._check.sent(message)

    def _no_seal(self, why: str) -> ReplySignatureError:
        self.ended = True
        return ReplySignatureError(f"the session {why} without the job's seal", "no_seal")

    def _seal_deadline(self) -> float:
        return time.monotonic() + self._seal_timeout


class WebSocketSession(_Session):
    """A websocket session with a streaming job: the job's data in, the seal at the end.

    ``recv()`` returns the job's messages (text or bytes, prefix removed). When the job ends
    the session itself, ``recv()`` verifies the seal and raises :class:`SessionEnded`
    (iteration just stops). ``close()`` asks for the seal, waits ``seal_timeout`` for it
    (dropping, but sealing, what the job still sends) and returns the :class:`Evidence`.
    """

    def __init__(self, connection: ClientConnection, check: SessionCheck, seal_timeout: float) -> None:
        super().__init__(check, seal_timeout)
        self._connection = connection

    def __enter__(self) -> WebSocketSession:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None and not self.ended:
            self.close()
        else:
            self.ended = True
            self._connection.close()

    def __iter__(self) -> Iterator[str | bytes]:
        with contextlib.suppress(SessionEnded):
            while True:
                yield self.recv()

    def send(self, message: str | bytes) -> None:
        self._outgoing(message)
        try:
            self._connection.send(message)
        except ConnectionClosed as exc:
            raise self._no_seal("closed") from exc

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The job's next message.

        Raises:
            TimeoutError: nothing came within ``timeout`` seconds.
            SessionEnded: the job ended the session and its seal verified.
            ReplySignatureError: a message with no known prefix, or the session closed unsealed.
        """
        if self.ended:
            raise SessionEnded(self.evidence) if self.evidence else GridError("the session has ended")
        try:
            message = self._connection.recv(timeout)
        except ConnectionClosed as exc:
            raise self._no_seal("closed") from exc
        result = self._received(message)
        if isinstance(result, Evidence):
            raise SessionEnded(result)
        return result

    def close(self) -> Evidence:
        """Ask for the seal, check it, close. Returns the session's :class:`Evidence`.

        Raises:
            ReplySignatureError: no seal within ``seal_timeout``, or one that does not hold.
        """
        if self.evidence is not None or self.ended:
            if self.evidence is None:
                raise self._no_seal("ended")
            return self.evidence
        deadline = self._seal_deadline()
        try:
            self._connection.send(WS_END)
            while True:
                message = self._connection.recv(max(0.0, deadline - time.monotonic()))
                if isinstance(result := self._received(message), Evidence):
                    return result
                self.dropped += 1
        except TimeoutError:
            self._connection.close()
            raise self._no_seal(f"got no answer in {self._seal_timeout:g}s and closed") from None
        except ConnectionClosed as exc:
            raise self._no_seal("closed") from exc

    def _received(self, message: str | bytes) -> str | bytes | Evidence:
        try:
            result = self._check.received(message)
        except GridError as exc:
            self.ended = True
            if isinstance(exc, StreamBrokenError):
                self.evidence = exc.evidence
            self._connection.close()
            raise
        if isinstance(result, Evidence):
            self.evidence, self.ended = result, True
            self._connection.close()
        return result


class AsyncStreamClient(BaseStreamClient):
    """:class:`StreamClient` for asyncio: ``async with AsyncStreamClient(target, streaming_key) as job``."""

    def __init__(
        self,
        target: StreamTarget,
        keypair: Keypair,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        seal_timeout: float = SEAL_TIMEOUT,
        keep_evidence: int = KEEP_EVIDENCE,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(target, keypair, timeout=timeout, seal_timeout=seal_timeout, keep_evidence=keep_evidence)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, verify=self.ssl_context, timeout=timeout, transport=transport, trust_env=False
        )

    async def __aenter__(self) -> AsyncStreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, url: str, **kwargs: Any) -> SealedResponse:
        """:meth:`StreamClient.request`."""
        async with self.stream(method, url, **kwargs) as response:
            await response.aread()
        return response

    async def get(self, url: str, **kwargs: Any) -> SealedResponse:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> SealedResponse:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> SealedResponse:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> SealedResponse:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> SealedResponse:
        return await self.request("DELETE", url, **kwargs)

    async def terminate(self) -> SealedResponse:
        """:meth:`StreamClient.terminate`."""
        return self._terminated(await self.post(TERMINATE_PATH))

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        headers: Any = None,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        body_sha256: str | None = None,
    ) -> AsyncIterator[SealedResponse]:
        """:meth:`StreamClient.stream`; a file body is hashed and read in a thread."""
        if is_file(content):
            if body_sha256 is None:
                body_sha256 = await asyncio.to_thread(file_sha256, content)
            content = _afile(content)
        request, payload = self._prepare(
            method, url, body_sha256=body_sha256, params=params, headers=headers, content=content, data=data,
            files=files, json=json,
        )  # fmt: skip
        try:
            origin = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._connection_error(exc) from exc
        async with contextlib.aclosing(origin):
            self._check_response_peer(origin)
            if not ReplyCheck.is_sealed(origin.headers):
                raise self.unsigned(origin.status_code, await _aprefix(origin.aiter_raw()))
            response = SealedResponse(origin, ReplyCheck(self, payload, origin.status_code, origin.headers))
            async with contextlib.aclosing(response):
                yield response

    @contextlib.asynccontextmanager
    async def websocket(
        self, path: str, *, params: Any = None, headers: Any = None
    ) -> AsyncIterator[AsyncWebSocketSession]:
        """:meth:`StreamClient.websocket`."""
        url, payload, upgrade_headers = self._ws_prepare(path, params, headers)
        try:
            connection = await aconnect(
                url, ssl=self.ssl_context, additional_headers=upgrade_headers, open_timeout=self.timeout,
                close_timeout=CLOSE_TIMEOUT, max_size=MAX_WS_MESSAGE, proxy=None,
            )  # fmt: skip
        except InvalidStatus as exc:
            raise self._refused(exc) from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise self._connection_error(exc) from exc
        try:
            self._check_peer(connection.transport.get_extra_info("ssl_object"))
        except GridError:
            await connection.close()
            raise
        async with AsyncWebSocketSession(connection, SessionCheck(self, payload), self.seal_timeout) as session:
            yield session


class AsyncWebSocketSession(_Session):
    """:class:`WebSocketSession` for asyncio (``async for message in ws``)."""

    def __init__(self, connection: AsyncConnection, check: SessionCheck, seal_timeout: float) -> None:
        super().__init__(check, seal_timeout)
        self._connection = connection

    async def __aenter__(self) -> AsyncWebSocketSession:
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None and not self.ended:
            await self.close()
        else:
            self.ended = True
            await self._connection.close()

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        with contextlib.suppress(SessionEnded):
            while True:
                yield await self.recv()

    async def send(self, message: str | bytes) -> None:
        self._outgoing(message)
        try:
            await self._connection.send(message)
        except ConnectionClosed as exc:
            raise self._no_seal("closed") from exc

    async def recv(self, timeout: float | None = None) -> str | bytes:
        """:meth:`WebSocketSession.recv`."""
        if self.ended:
            raise SessionEnded(self.evidence) if self.evidence else GridError("the session has ended")
        try:
            async with asyncio.timeout(timeout):
                message = await self._connection.recv()
        except ConnectionClosed as exc:
            raise self._no_seal("closed") from exc
        result = await self._received(message)
        if isinstance(result, Evidence):
            raise SessionEnded(result)
        return result

    async def close(self) -> Evidence:
        """:meth:`WebSocketSession.close`."""
        if self.evidence is not None or self.ended:
            if self.evidence is None:
                raise self._no_seal("ended")
            return self.evidence
        try:
            async with asyncio.timeout(self._seal_timeout):
                await self._connection.send(WS_END)
                while True:
                    if isinstance(result := await self._received(await self._connection.recv()), Evidence):
                        return result
                    self.dropped += 1
        except TimeoutError:
            await self._connection.close()
            raise self._no_seal(f"got no answer in {self._seal_timeout:g}s and closed") from None
        except ConnectionClosed as exc:
            raise self._no_seal("closed") from exc

    async def _received(self, message: str | bytes) -> str | bytes | Evidence:
        try:
            result = self._check.received(message)
        except GridError as exc:
            self.ended = True
            if isinstance(exc, StreamBrokenError):
                self.evidence = exc.evidence
            await self._connection.close()
            raise
        if isinstance(result, Evidence):
            self.evidence, self.ended = result, True
            await self._connection.close()
        return result


def _prefix(chunks: Iterator[bytes]) -> bytes:
    """The start of an unsigned reply's body, for the error message."""
    body = b""
    with contextlib.suppress(httpx.TransportError):
        for chunk in chunks:
            body += chunk
            if len(body) >= _ERROR_BODY:
                break
    return body


async def _aprefix(chunks: AsyncIterator[bytes]) -> bytes:
    body = b""
    with contextlib.suppress(httpx.TransportError):
        async for chunk in chunks:
            body += chunk
            if len(body) >= _ERROR_BODY:
                break
    return body


async def _afile(file: Any) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
        yield chunk
