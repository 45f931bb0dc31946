"""What :class:`StreamClient` and :class:`AsyncStreamClient` share that does no I/O (DESIGN.md §5).

The trust checks made before anything is sent, request signing, and the sans-I/O checks of
replies: :class:`ReplyCheck` (a buffered or streamed HTTP reply, fed its raw bytes) and
:class:`SessionCheck` (the messages of a websocket session). The twins in
``facilitator_sdk.streaming`` only move bytes.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from facilitator_sdk.errors import (
    ReplySignatureError,
    StreamBrokenError,
    StreamingConnectionError,
    StreamingError,
    StreamingTrustError,
)
from protocol.errors import FrameError, SignatureError
from protocol.keys import Keypair
from protocol.requests import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    body_digest,
    request_payload,
    sign_request,
)
from protocol.streaming import (
    FRAME_DATA,
    FRAMING,
    HEADER_CONTENT_ENCODING,
    HEADER_FRAMING,
    HEADER_REPLY_DIGEST,
    HEADER_REPLY_SIGNATURE,
    HEADER_REQUEST_DIGEST,
    REQUEST_PURPOSE,
    WS_DATA_PREFIX,
    WS_SEAL_PREFIX,
    Evidence,
    FrameDecoder,
    Readiness,
    ReplySeal,
    Transcript,
    cert_fingerprint,
    combine_digests,
    request_digest,
    verify_readiness,
    verify_reply,
)

__all__ = ["BaseStreamClient", "ReplyCheck", "SealedResponse", "SessionCheck", "StreamTarget", "file_sha256"]

DEFAULT_TIMEOUT = 30.0
SEAL_TIMEOUT = 10.0
KEEP_EVIDENCE = 100
MAX_WS_MESSAGE = 16 * 1024 * 1024
CLOSE_TIMEOUT = 2.0  # the websocket closing handshake: a peer that does not answer is cut off
MAX_PENDING_SIGNATURES = 10_000
WS_UPGRADE_STATUS = 101  # the status a websocket session's seal carries: the upgrade's
# A job's Content-Encoding on a framed reply: it applies to the DATA bytes, not to the framed body.
CHUNK_SIZE = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


class StreamTarget(BaseModel):
    """A streaming job as the miner vouched for it: where it answers, its key, its certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    readiness: Readiness
    cert_pem: str
    miner_hotkey: str
    miner_signature: str

    @classmethod
    def from_endpoint(cls, job_id: str, endpoint: Any, *, miner_hotkey: str | None = None) -> StreamTarget:
        """From a ``protocol.messages.StreamingEndpoint`` (or its JSON dict), as a job's status carries it.

        Args:
            job_id: the job the client asked for; the readiness must be for it (checked by the clients).
            miner_hotkey: the miner the facilitator says runs the job (``job.miner``); when
                given, the endpoint must be signed by that one.

        Raises:
            StreamingTrustError: the endpoint carries no miner signature, or names another miner.
        """
        data = dict(endpoint) if isinstance(endpoint, Mapping) else endpoint.model_dump(mode="json")
        if not data.get("miner_hotkey") or not data.get("miner_signature"):
            raise StreamingTrustError(f"the endpoint of job {job_id} is not signed by its miner")
        if miner_hotkey is not None and data["miner_hotkey"] != miner_hotkey:
            raise StreamingTrustError(
                f"the endpoint of job {job_id} is signed by {data['miner_hotkey']}, not by its miner {miner_hotkey}"
            )
        return cls(
            job_id=job_id,
            readiness=Readiness.model_validate(data["readiness"]),
            cert_pem=data["cert_pem"],
            miner_hotkey=data["miner_hotkey"],
            miner_signature=data["miner_signature"],
        )


def pinned_context(target: StreamTarget) -> ssl.SSLContext:
    """Check the miner's word on ``target`` and return a TLS context trusting only its certificate.

    Raises:
        StreamingTrustError: the readiness is for another job or not the miner's signature, or
            ``cert_pem`` is not one certificate whose sha256 the miner signed.
    """
    readiness, job_id = target.readiness, target.job_id
    if readiness.job_id != job_id:
        raise StreamingTrustError(f"the readiness is for job {readiness.job_id}, not {job_id}")
    try:
        verify_readiness(target.miner_hotkey, readiness, target.miner_signature)
    except SignatureError as exc:
        raise StreamingTrustError(
            f"the readiness of job {job_id} is not signed by miner {target.miner_hotkey}: {exc.message}"
        ) from exc
    try:
        der = ssl.PEM_cert_to_DER_cert(target.cert_pem.strip())
    except ValueError as exc:
        raise StreamingTrustError(f"the certificate of job {job_id} is not one PEM certificate: {exc}") from exc
    if cert_fingerprint(der) != readiness.cert_fingerprint:
        raise StreamingTrustError(
            f"the certificate of job {job_id} (sha256 {cert_fingerprint(der)}) is not the one its miner "
            f"signed ({readiness.cert_fingerprint})"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # the pin replaces it: the job is reached by address
    try:
        context.load_verify_locations(cadata=target.cert_pem)
    except ssl.SSLError as exc:
        raise StreamingTrustError(f"the certificate of job {job_id} cannot be loaded: {exc}") from exc
    return context


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


class BaseStreamClient:
    def __init__(
        self, target: StreamTarget, keypair: Keypair, *, timeout: float | None, seal_timeout: float, keep_evidence: int
    ) -> None:
        self.ssl_context = pinned_context(target)
        self.target, self.keypair = target, keypair
        self.timeout, self.seal_timeout = timeout, seal_timeout
        readiness = target.readiness
        host = f"[{readiness.address}]" if ":" in readiness.address else readiness.address
        self.base_url = f"https://{host}:{readiness.port}"
        self.evidence: deque[Evidence] = deque(maxlen=keep_evidence)
        # Signatures of requests whose replies are not verified yet, by nonce (bounded).
        self._request_signatures: dict[str, str] = {}
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
        signed = sign_request(self.keypair, method, path, query, purpose=REQUEST_PURPOSE, body_sha256=body_sha256)
        headers.update(signed)
        if len(self._request_signatures) >= MAX_PENDING_SIGNATURES:
            self._request_signatures.pop(next(iter(self._request_signatures)))
        self._request_signatures[signed[HEADER_NONCE]] = signed[HEADER_SIGNATURE]
        return request_payload(method, path, query, body_sha256, signed[HEADER_TIMESTAMP], signed[HEADER_NONCE])

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
        der = ssl_object.getpeercert(True)
        if der is None or cert_fingerprint(der) != self.target.readiness.cert_fingerprint:
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

    @staticmethod
    def _unsigned(status: int, body: bytes) -> ReplySignatureError:
        text = body[:200].decode("utf-8", "replace")
        return ReplySignatureError(f"unsigned reply {status} from the job's gateway: {text}", "unsigned", status)

    def _verify_seal(self, seal: ReplySeal, payload: dict[str, str], status: int, reply_digest: str) -> None:
        if seal.request_digest != request_digest(payload):
            raise ReplySignatureError("the reply is sealed for another request", "request_mismatch", status)
        if seal.status != status:
            raise ReplySignatureError(f"the reply is {status} but sealed as {seal.status}", "status_mismatch", status)
        if seal.reply_digest != reply_digest:
            raise ReplySignatureError(
                f"the reply received (sha256 {reply_digest}) is not what the job sealed ({seal.reply_digest})",
                "digest_mismatch",
                status,
            )
        try:
            verify_reply(self.target.readiness.job_public_key, self.target.job_id, seal)
        except SignatureError as exc:
            raise ReplySignatureError(
                f"the seal is not the job key's signature: {exc.message}", "bad_signature", status
            ) from exc

    def _record(self, payload: dict[str, str], seal: ReplySeal, body_sha256: str | None = None) -> Evidence:
        evidence = Evidence(
            job_id=self.target.job_id,
            request=payload,
            client_streaming_key=self.keypair.hotkey,
            request_signature=self._request_signatures.pop(payload["nonce"], ""),
            seal=seal,
            readiness=self.target.readiness,
            miner_hotkey=self.target.miner_hotkey,
            miner_signature=self.target.miner_signature,
            reply_body_sha256=body_sha256,
        )
        self.evidence.append(evidence)
        if not seal.complete:
            raise StreamBrokenError(seal.error, evidence)
        return evidence


def _parse_seal(raw: str | bytes, status: int | None) -> ReplySeal:
    try:
        return ReplySeal.model_validate_json(raw)
    except ValidationError as exc:
        raise ReplySignatureError(f"the seal is not a ReplySeal: {exc}", "bad_signature", status) from exc


class ReplyCheck:
    """Checks one HTTP reply while its raw body goes by: :meth:`feed` the bytes, :meth:`finish` at the end.

    A framed reply (``X-Grid-Framing``) yields the payloads of its DATA frames and ends with an
    END frame's seal; any other reply is its own data, sealed by headers over its raw bytes.
    """

    def __init__(self, client: BaseStreamClient, payload: dict[str, str], status: int, headers: httpx.Headers) -> None:
        framing = headers.get(HEADER_FRAMING)
        if framing is not None and framing != FRAMING:
            raise ReplySignatureError(f"unknown framing {framing!r}", "bad_framing", status)
        self.client, self.payload, self.status, self.headers = client, payload, status, headers
        self.decoder = FrameDecoder() if framing else None
        self._hash = hashlib.sha256()
        self._end: bytes | None = None

    @staticmethod
    def is_sealed(headers: httpx.Headers) -> bool:
        return HEADER_FRAMING in headers or HEADER_REPLY_SIGNATURE in headers

    def feed(self, raw: bytes) -> list[bytes]:
        if self.decoder is None:
            self._hash.update(raw)
            return [raw]
        try:
            frames = self.decoder.feed(raw)
        except FrameError as exc:
            message = f"the stream is not well framed: {exc.message}"
            raise ReplySignatureError(message, "bad_framing", self.status) from exc
        data = []
        for kind, payload in frames:
            if kind == FRAME_DATA:
                self._hash.update(payload)
                data.append(payload)
            else:
                self._end = payload
        return data

    def finish(self) -> tuple[ReplySeal, Evidence]:
        """Verify the seal once the body has ended.

        Raises:
            ReplySignatureError: no seal, or one that does not cover this reply.
            StreamBrokenError: a valid seal that says the job broke off (``complete=False``).
        """
        digest = self._hash.hexdigest()
        if self.decoder is not None:
            if self._end is None:
                raise ReplySignatureError("the stream ended without its END frame", "no_seal", self.status)
            seal = _parse_seal(self._end, self.status)
            self.client._verify_seal(seal, self.payload, self.status, digest)
            return seal, self.client._record(self.payload, seal)
        if self.headers.get(HEADER_REPLY_DIGEST, digest) != digest:
            raise ReplySignatureError(
                f"the body received (sha256 {digest}) is not the one the gateway sealed "
                f"({self.headers[HEADER_REPLY_DIGEST]})",
                "digest_mismatch",
                self.status,
            )
        if self.headers.get(HEADER_REQUEST_DIGEST, request_digest(self.payload)) != request_digest(self.payload):
            raise ReplySignatureError("the reply is sealed for another request", "request_mismatch", self.status)
        seal = ReplySeal(
            request_digest=request_digest(self.payload),
            status=self.status,
            reply_digest=digest,
            signature=self.headers[HEADER_REPLY_SIGNATURE],
        )
        self.client._verify_seal(seal, self.payload, self.status, digest)
        return seal, self.client._record(self.payload, seal, digest)


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


class SessionCheck:
    """Checks one websocket session: what each side sent goes into the :class:`Transcript` the seal covers.

    The transcript hashes each direction apart, so messages crossing on the wire do not matter.
    When the job ends the session, the client's last messages may still be on their way and miss
    the seal: it is checked against every prefix of what the client sent, the whole first.
    """

    def __init__(self, client: BaseStreamClient, payload: dict[str, str]) -> None:
        self.client, self.payload = client, payload
        self.transcript = Transcript()
        self._client_prefixes = [self.transcript.direction_digest("client")]

    def sent(self, message: str | bytes) -> None:
        self.transcript.add("client", message)
        self._client_prefixes.append(self.transcript.direction_digest("client"))

    def received(self, message: str | bytes) -> str | bytes | Evidence:
        """The job's data, or the verified :class:`Evidence` when the message is the seal.

        Raises:
            ReplySignatureError: a message with no known prefix, or a seal that does not hold.
            StreamBrokenError: a valid seal that says the job broke off.
        """
        if isinstance(message, str) and message.startswith(WS_DATA_PREFIX):
            data: str | bytes = message[len(WS_DATA_PREFIX) :]
        elif isinstance(message, bytes) and message.startswith(WS_DATA_PREFIX.encode()):
            data = message[len(WS_DATA_PREFIX) :]
        elif isinstance(message, str) and message.startswith(WS_SEAL_PREFIX):
            seal = _parse_seal(message[len(WS_SEAL_PREFIX) :], WS_UPGRADE_STATUS)
            job = self.transcript.direction_digest("job")
            candidates = (combine_digests(prefix, job) for prefix in reversed(self._client_prefixes))
            digest = seal.reply_digest if seal.reply_digest in candidates else self.transcript.hexdigest()
            self.client._verify_seal(seal, self.payload, WS_UPGRADE_STATUS, digest)
            return self.client._record(self.payload, seal)
        else:
            raise ReplySignatureError(f"a message without a known prefix: {message[:20]!r}", "bad_message")
        self.transcript.add("job", data)
        return data
