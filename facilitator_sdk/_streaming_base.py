"""What :class:`StreamClient` and :class:`AsyncStreamClient` share that does no I/O (DESIGN.md §5).

The checks themselves are :mod:`protocol.stream_caller` (trusting the endpoint, signing requests,
:class:`ReplyCheck` and :class:`SessionCheck`); here they raise the SDK's errors and meet httpx:
:class:`SealedResponse` checks a reply as its body is read. The twins in
``facilitator_sdk.streaming`` only move bytes.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx

from facilitator_sdk.errors import (
    ReplySignatureError,
    StreamBrokenError,
    StreamingConnectionError,
    StreamingError,
    StreamingTrustError,
)
from protocol.keys import Keypair
from protocol.requests import body_digest
from protocol.stream_caller import ReplyCheck, SessionCheck, StreamCaller, is_pinned
from protocol.stream_caller import StreamTarget as _StreamTarget
from protocol.streaming import HEADER_CONTENT_ENCODING, Evidence, ReplySeal

__all__ = ["BaseStreamClient", "ReplyCheck", "SealedResponse", "SessionCheck", "StreamTarget", "file_sha256"]

DEFAULT_TIMEOUT = 30.0
SEAL_TIMEOUT = 10.0
MAX_WS_MESSAGE = 16 * 1024 * 1024
CLOSE_TIMEOUT = 2.0  # the websocket closing handshake: a peer that does not answer is cut off
# A job's Content-Encoding on a framed reply: it applies to the DATA bytes, not to the framed body.
CHUNK_SIZE = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


class StreamTarget(_StreamTarget):
    """A streaming job as the miner vouched for it: where it answers, its key, its certificate.

    :class:`protocol.stream_caller.StreamTarget`; :meth:`from_endpoint` raises :class:`StreamingTrustError`.
    """

    trust_error = StreamingTrustError


def file_sha256(file: Any) -> str:
    """Hash a seekable binary file from where it stands, and put it back there: it is then sent."""
    if not (hasattr(file, "seekable") and file.seekable()):
        raise TypeError("a file that cannot seek needs body_sha256= (its sha256, hex): it is read only once")
    start = file.tell()
    digest = hashlib.sha256()
    while chunk := file.read(CHUNK_SIZE):
        digest.update(chunk)
    file.seek(start)
    return digest.hexdigest()


def is_file(content: Any) -> bool:
    return hasattr(content, "read") and not isinstance(content, (bytes, str))


class BaseStreamClient(StreamCaller):
    """A :class:`~protocol.stream_caller.StreamCaller` raising the SDK's errors, with an httpx client."""

    trust_error = StreamingTrustError
    reply_error = ReplySignatureError
    broken_error = StreamBrokenError

    def __init__(
        self, target: StreamTarget, keypair: Keypair, *, timeout: float | None, seal_timeout: float, keep_evidence: int
    ) -> None:
        super().__init__(target, keypair, keep_evidence=keep_evidence)
        self.timeout, self.seal_timeout = timeout, seal_timeout
        readiness = target.readiness
        host = f"[{readiness.address}]" if ":" in readiness.address else readiness.address
        self.base_url = f"https://{host}:{readiness.port}"
        self._http: httpx.Client | httpx.AsyncClient

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target.job_id} at {self.base_url}>"

    # -- requests ----------------------------------------------------------------------------------

    def _prepare(
        self, method: str, url: str, *, body_sha256: str | None, files: Any = None, **kwargs: Any
    ) -> tuple[httpx.Request, dict[str, str]]:
        """Build the request as it will be sent and sign it; returns it with the signed payload."""
        if body_sha256 is not None and not _SHA256.fullmatch(body_sha256):
            raise ValueError("body_sha256 must be the body's sha256 as 64 lowercase hex digits")
        request = self._http.build_request(method, url, files=files, **kwargs)
        if body_sha256 is None:
            if files is not None:
                request.read()  # a multipart body is signed, hence built, whole
            try:
                body_sha256 = body_digest(request.content)
            except httpx.RequestNotRead:
                raise TypeError(
                    "a streamed request body needs body_sha256= (its sha256, hex): the signature covers it"
                ) from None
        return request, self._sign(request.headers, method, request.url, body_sha256)

    def _sign(self, headers: Any, method: str, url: httpx.URL, body_sha256: str) -> dict[str, str]:
        # The path and query as they go on the wire (percent-encoded): what the gateway checks.
        path = url.raw_path.partition(b"?")[0].decode("ascii")
        query = url.query.decode("ascii")
        return self.sign(headers, method, path, query, body_sha256)

    def _ws_prepare(
        self, path: str, params: Any, headers: Mapping[str, str] | None
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        """The ``wss://`` URL, the signed payload and the headers of a websocket upgrade (a GET, no body)."""
        url = httpx.URL(self.base_url).join(path)
        if params:
            url = url.copy_merge_params(params)
        upgrade_headers = dict(headers or {})
        payload = self._sign(upgrade_headers, "GET", url, body_digest(b""))
        return str(url.copy_with(scheme="wss")), payload, upgrade_headers

    # -- connections -------------------------------------------------------------------------------

    def _connection_error(self, exc: BaseException) -> StreamingConnectionError:
        where = f"job {self.target.job_id} at {self.base_url}"
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in detail:
            message = f"cannot reach {where}: it does not present the pinned certificate ({detail})"
        elif isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, OSError, TimeoutError)):
            message = f"cannot reach {where}: {detail}"
        else:
            message = f"the connection to {where} broke: {detail}"
        return StreamingConnectionError(message, self.base_url)

    def _refused(self, exc: Any) -> StreamingConnectionError:
        """The gateway answered a websocket upgrade with an HTTP reply (``websockets`` ``InvalidStatus``)."""
        status, body = exc.response.status_code, exc.response.body or b""
        return StreamingConnectionError(
            f"job {self.target.job_id} at {self.base_url} refused the websocket: {status} "
            f"{body[:200].decode('utf-8', 'replace')}",
            self.base_url,
            status,
        )

    def _check_peer(self, ssl_object: Any) -> None:
        """The exact pin: the certificate presented is the one the miner signed."""
        if ssl_object is None:
            return  # a transport without TLS (tests)
        if not is_pinned(self.target, ssl_object.getpeercert(True)):
            raise StreamingConnectionError(
                f"job {self.target.job_id} at {self.base_url} presented another certificate than the pinned one",
                self.base_url,
            )

    def _check_response_peer(self, response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        self._check_peer(stream.get_extra_info("ssl_object") if stream is not None else None)

    # -- replies -----------------------------------------------------------------------------------

    def _terminated(self, response: SealedResponse) -> SealedResponse:
        if response.status_code >= 400:
            raise StreamingError(
                f"the gateway of job {self.target.job_id} refused to terminate it: "
                f"{response.status_code} {response.text[:200]}"
            )
        return response


class _SealedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """The body of a :class:`SealedResponse`: the job's data, checked as it goes by."""

    def __init__(self, origin: httpx.Response, check: ReplyCheck, response: SealedResponse) -> None:
        self._origin, self._check, self._response = origin, check, response

    def __iter__(self) -> Iterator[bytes]:
        try:
            for raw in self._origin.stream:  # type: ignore[union-attr]
                yield from self._check.feed(raw)
        except httpx.TransportError as exc:
            raise self._check.client._connection_error(exc) from exc
        self._response._sealed(self._check)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for raw in self._origin.stream:  # type: ignore[union-attr]
                for data in self._check.feed(raw):
                    yield data
        except httpx.TransportError as exc:
            raise self._check.client._connection_error(exc) from exc
        self._response._sealed(self._check)

    def close(self) -> None:
        self._origin.close()

    async def aclose(self) -> None:
        await self._origin.aclose()


class SealedResponse(httpx.Response):
    """An ``httpx.Response`` whose body is checked against the job's seal as it is read.

    The body is the job's data (the DATA frames of a framed reply), decoded as httpx does
    (``content``, ``text``, ``json()``, ``iter_bytes()``, ``iter_lines()``, their ``a`` twins).
    ``seal`` and ``evidence`` are set once the body has been read to its end and verified;
    reading it raises :class:`ReplySignatureError` or :class:`StreamBrokenError` at the end
    otherwise.
    """

    def __init__(self, origin: httpx.Response, check: ReplyCheck) -> None:
        headers = origin.headers.copy()
        if check.decoder is not None and HEADER_CONTENT_ENCODING in headers:
            headers["Content-Encoding"] = headers[HEADER_CONTENT_ENCODING]  # httpx then decodes the data
        super().__init__(
            origin.status_code,
            headers=headers,
            stream=_SealedStream(origin, check, self),
            request=origin.request,
            extensions=origin.extensions,
        )
        self.default_encoding = origin.default_encoding
        self._origin = origin
        self.framed = check.decoder is not None
        self.seal: ReplySeal | None = None
        self.evidence: Evidence | None = None

    def __repr__(self) -> str:
        state = "sealed" if self.evidence is not None else "unverified"
        return f"<SealedResponse [{self.status_code} {self.reason_phrase}] {state}>"

    @property
    def elapsed(self) -> Any:
        return self._origin.elapsed

    def _sealed(self, check: ReplyCheck) -> None:
        try:
            self.seal, self.evidence = check.finish()
        except StreamBrokenError as exc:
            self.seal, self.evidence = exc.evidence.seal, exc.evidence
            raise
