"""The caller's side of a streaming job, sans-I/O: trust the endpoint, sign requests, check replies (DESIGN.md §5).

:mod:`protocol.streaming` is the wire contract; this module is what anyone who calls a streaming
job checks, whatever moves the bytes (the SDK's clients over httpx and websockets; an executor
calling a peer's job): headers are plain ``Mapping[str, str]`` (case-insensitive ones where
the transport gives them so).

* :class:`StreamTarget` is a job's endpoint as its miner vouched for it; :func:`check_target`
  checks that word and :func:`pinned_context` returns the TLS context that trusts only the signed
  certificate (:func:`is_pinned` checks a presented certificate exactly).
* :class:`StreamCaller` holds one job's target and the caller's streaming key: it signs requests
  (:meth:`~StreamCaller.sign`) and remembers their signatures until the reply is verified, when
  it keeps the :class:`~protocol.streaming.Evidence`.
* :class:`ReplyCheck` checks one HTTP reply (buffered or framed) fed its raw bytes;
  :class:`SessionCheck` checks the messages of one websocket session.

They raise :class:`~protocol.errors.EndpointTrustError`, :class:`~protocol.errors.ReplySealError`
and :class:`~protocol.errors.ReplyBrokenError`, or the subclasses a caller names in
:attr:`StreamCaller.trust_error` and its siblings (the SDK raises its own).
"""

from __future__ import annotations

import hashlib
import ssl
from collections import deque
from collections.abc import Mapping, MutableMapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from protocol.errors import EndpointTrustError, FrameError, ReplyBrokenError, ReplySealError, SignatureError
from protocol.keys import Keypair
from protocol.requests import HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, request_payload, sign_request
from protocol.streaming import (
    FRAME_DATA,
    FRAMING,
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

__all__ = [
    "KEEP_EVIDENCE",
    "WS_UPGRADE_STATUS",
    "ReplyCheck",
    "SessionCheck",
    "StreamCaller",
    "StreamTarget",
    "check_target",
    "is_pinned",
    "is_sealed",
    "pinned_context",
]

KEEP_EVIDENCE = 100
MAX_PENDING_SIGNATURES = 10_000
WS_UPGRADE_STATUS = 101  # the status a websocket session's seal carries: the upgrade's


# -- the endpoint ----------------------------------------------------------------------------------


class StreamTarget(BaseModel):
    """A streaming job as the miner vouched for it: where it answers, its key, its certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # What from_endpoint raises; a subclass names its own (a subclass of EndpointTrustError).
    trust_error: ClassVar[type[EndpointTrustError]] = EndpointTrustError

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
            EndpointTrustError: the endpoint carries no miner signature, or names another miner.
        """
        data = dict(endpoint) if isinstance(endpoint, Mapping) else endpoint.model_dump(mode="json")
        if not data.get("miner_hotkey") or not data.get("miner_signature"):
            raise cls.trust_error(f"the endpoint of job {job_id} is not signed by its miner")
        if miner_hotkey is not None and data["miner_hotkey"] != miner_hotkey:
            raise cls.trust_error(
                f"the endpoint of job {job_id} is signed by {data['miner_hotkey']}, not by its miner {miner_hotkey}"
            )
        return cls(
            job_id=job_id,
            readiness=Readiness.model_validate(data["readiness"]),
            cert_pem=data["cert_pem"],
            miner_hotkey=data["miner_hotkey"],
            miner_signature=data["miner_signature"],
        )


def check_target(target: StreamTarget, error: type[EndpointTrustError] = EndpointTrustError) -> bytes:
    """Check the miner's word on ``target``; returns the DER of its certificate.

    Raises:
        EndpointTrustError: (or ``error``) the readiness is for another job or not the miner's
            signature, or ``cert_pem`` is not one certificate whose sha256 the miner signed.
    """
    readiness, job_id = target.readiness, target.job_id
    if readiness.job_id != job_id:
        raise error(f"the readiness is for job {readiness.job_id}, not {job_id}")
    try:
        verify_readiness(target.miner_hotkey, readiness, target.miner_signature)
    except SignatureError as exc:
        raise error(
            f"the readiness of job {job_id} is not signed by miner {target.miner_hotkey}: {exc.message}"
        ) from exc
    try:
        der = ssl.PEM_cert_to_DER_cert(target.cert_pem.strip())
    except ValueError as exc:
        raise error(f"the certificate of job {job_id} is not one PEM certificate: {exc}") from exc
    if cert_fingerprint(der) != readiness.cert_fingerprint:
        raise error(
            f"the certificate of job {job_id} (sha256 {cert_fingerprint(der)}) is not the one its miner "
            f"signed ({readiness.cert_fingerprint})"
        )
    return der


def pinned_context(target: StreamTarget, error: type[EndpointTrustError] = EndpointTrustError) -> ssl.SSLContext:
    """:func:`check_target`, then a TLS client context trusting only the signed certificate.

    Raises:
        EndpointTrustError: (or ``error``) as :func:`check_target`, or the certificate cannot be loaded.
    """
    check_target(target, error)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # the pin replaces it: the job is reached by address
    try:
        context.load_verify_locations(cadata=target.cert_pem)
    except ssl.SSLError as exc:
        raise error(f"the certificate of job {target.job_id} cannot be loaded: {exc}") from exc
    return context


def is_pinned(target: StreamTarget, der: bytes | None) -> bool:
    """The exact pin: ``der`` (the certificate the peer presented) is the one the miner signed."""
    return der is not None and cert_fingerprint(der) == target.readiness.cert_fingerprint


def is_sealed(headers: Mapping[str, str]) -> bool:
    """The reply's headers say it is sealed (framed, or signed by headers): else the gateway refused unsigned."""
    return HEADER_FRAMING in headers or HEADER_REPLY_SIGNATURE in headers


# -- the caller ------------------------------------------------------------------------------------


class StreamCaller:
    """One streaming job as its caller sees it: the vouched-for target and the caller's streaming key.

    Checks the target at once (:func:`pinned_context`, kept in :attr:`ssl_context`); signs
    requests and keeps their signatures (bounded) until their replies verify; keeps the latest
    ``keep_evidence`` verified replies in :attr:`evidence`.
    """

    trust_error: ClassVar[type[EndpointTrustError]] = EndpointTrustError
    reply_error: ClassVar[type[ReplySealError]] = ReplySealError
    broken_error: ClassVar[type[ReplyBrokenError]] = ReplyBrokenError

    def __init__(self, target: StreamTarget, keypair: Keypair, *, keep_evidence: int = KEEP_EVIDENCE) -> None:
        self.ssl_context = pinned_context(target, self.trust_error)
        self.target, self.keypair = target, keypair
        self.evidence: deque[Evidence] = deque(maxlen=keep_evidence)
        # Signatures of requests whose replies are not verified yet, by nonce (bounded).
        self._request_signatures: dict[str, str] = {}

    def sign(
        self, headers: MutableMapping[str, str], method: str, path: str, query: str, body_sha256: str
    ) -> dict[str, str]:
        """Add the signature headers of one request to ``headers``; returns the signed payload.

        ``path`` and ``query`` as they go on the wire (percent-encoded): what the gateway checks.
        """
        signed = sign_request(self.keypair, method, path, query, purpose=REQUEST_PURPOSE, body_sha256=body_sha256)
        headers.update(signed)
        if len(self._request_signatures) >= MAX_PENDING_SIGNATURES:
            self._request_signatures.pop(next(iter(self._request_signatures)))
        self._request_signatures[signed[HEADER_NONCE]] = signed[HEADER_SIGNATURE]
        return request_payload(method, path, query, body_sha256, signed[HEADER_TIMESTAMP], signed[HEADER_NONCE])

    def unsigned(self, status: int, body: bytes) -> ReplySealError:
        """The error for a reply that carries no seal at all (often the gateway's own refusal)."""
        text = body[:200].decode("utf-8", "replace")
        return self.reply_error(f"unsigned reply {status} from the job's gateway: {text}", "unsigned", status)

    def verify_seal(self, seal: ReplySeal, payload: dict[str, str], status: int, reply_digest: str) -> None:
        """Raise :attr:`reply_error` unless ``seal`` is the job key's over this request, status and digest."""
        if seal.request_digest != request_digest(payload):
            raise self.reply_error("the reply is sealed for another request", "request_mismatch", status)
        if seal.status != status:
            raise self.reply_error(f"the reply is {status} but sealed as {seal.status}", "status_mismatch", status)
        if seal.reply_digest != reply_digest:
            raise self.reply_error(
                f"the reply received (sha256 {reply_digest}) is not what the job sealed ({seal.reply_digest})",
                "digest_mismatch",
                status,
            )
        try:
            verify_reply(self.target.readiness.job_public_key, self.target.job_id, seal)
        except SignatureError as exc:
            raise self.reply_error(
                f"the seal is not the job key's signature: {exc.message}", "bad_signature", status
            ) from exc

    def record(self, payload: dict[str, str], seal: ReplySeal, body_sha256: str | None = None) -> Evidence:
        """Keep the evidence of a verified reply.

        Raises:
            ReplyBrokenError: (:attr:`broken_error`) the seal says the job broke off; it carries the evidence.
        """
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
            raise self.broken_error(seal.error, evidence)
        return evidence

    def parse_seal(self, raw: str | bytes, status: int | None) -> ReplySeal:
        try:
            return ReplySeal.model_validate_json(raw)
        except ValidationError as exc:
            raise self.reply_error(f"the seal is not a ReplySeal: {exc}", "bad_signature", status) from exc


# -- replies ---------------------------------------------------------------------------------------


class ReplyCheck:
    """Checks one HTTP reply while its raw body goes by: :meth:`feed` the bytes, :meth:`finish` at the end.

    A framed reply (``X-Grid-Framing``) yields the payloads of its DATA frames and ends with an
    END frame's seal; any other reply is its own data, sealed by headers over its raw bytes.
    ``headers`` must look names up as the transport does (HTTP headers: case-insensitively).
    """

    def __init__(self, caller: StreamCaller, payload: dict[str, str], status: int, headers: Mapping[str, str]) -> None:
        framing = headers.get(HEADER_FRAMING)
        if framing is not None and framing != FRAMING:
            raise caller.reply_error(f"unknown framing {framing!r}", "bad_framing", status)
        self.client, self.payload, self.status, self.headers = caller, payload, status, headers
        self.decoder = FrameDecoder() if framing else None
        self._hash = hashlib.sha256()
        self._end: bytes | None = None

    is_sealed = staticmethod(is_sealed)

    def feed(self, raw: bytes) -> list[bytes]:
        """The job's data in ``raw`` (the DATA frames' payloads of a framed reply)."""
        if self.decoder is None:
            self._hash.update(raw)
            return [raw]
        try:
            frames = self.decoder.feed(raw)
        except FrameError as exc:
            message = f"the stream is not well framed: {exc.message}"
            raise self.client.reply_error(message, "bad_framing", self.status) from exc
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
            ReplySealError: no seal, or one that does not cover this reply.
            ReplyBrokenError: a valid seal that says the job broke off (``complete=False``).
        """
        caller, digest = self.client, self._hash.hexdigest()
        if self.decoder is not None:
            if self._end is None:
                raise caller.reply_error("the stream ended without its END frame", "no_seal", self.status)
            seal = caller.parse_seal(self._end, self.status)
            caller.verify_seal(seal, self.payload, self.status, digest)
            return seal, caller.record(self.payload, seal)
        if self.headers.get(HEADER_REPLY_DIGEST, digest) != digest:
            raise caller.reply_error(
                f"the body received (sha256 {digest}) is not the one the gateway sealed "
                f"({self.headers[HEADER_REPLY_DIGEST]})",
                "digest_mismatch",
                self.status,
            )
        if self.headers.get(HEADER_REQUEST_DIGEST, request_digest(self.payload)) != request_digest(self.payload):
            raise caller.reply_error("the reply is sealed for another request", "request_mismatch", self.status)
        signature = self.headers.get(HEADER_REPLY_SIGNATURE)
        if signature is None:
            raise caller.unsigned(self.status, b"")
        seal = ReplySeal(
            request_digest=request_digest(self.payload),
            status=self.status,
            reply_digest=digest,
            signature=signature,
        )
        caller.verify_seal(seal, self.payload, self.status, digest)
        return seal, caller.record(self.payload, seal, digest)


class SessionCheck:
    """Checks one websocket session: what each side sent goes into the :class:`Transcript` the seal covers.

    The transcript hashes each direction apart, so messages crossing on the wire do not matter.
    When the job ends the session, the client's last messages may still be on their way and miss
    the seal: it is checked against every prefix of what the client sent, the whole first.
    """

    def __init__(self, caller: StreamCaller, payload: dict[str, str]) -> None:
        self.client, self.payload = caller, payload
        self.transcript = Transcript()
        self._client_prefixes = [self.transcript.direction_digest("client")]

    def sent(self, message: str | bytes) -> None:
        self.transcript.add("client", message)
        self._client_prefixes.append(self.transcript.direction_digest("client"))

    def received(self, message: str | bytes) -> str | bytes | Evidence:
        """The job's data, or the verified :class:`Evidence` when the message is the seal.

        Raises:
            ReplySealError: a message with no known prefix, or a seal that does not hold.
            ReplyBrokenError: a valid seal that says the job broke off.
        """
        if isinstance(message, str) and message.startswith(WS_DATA_PREFIX):
            data: str | bytes = message[len(WS_DATA_PREFIX) :]
        elif isinstance(message, bytes) and message.startswith(WS_DATA_PREFIX.encode()):
            data = message[len(WS_DATA_PREFIX) :]
        elif isinstance(message, str) and message.startswith(WS_SEAL_PREFIX):
            caller = self.client
            seal = caller.parse_seal(message[len(WS_SEAL_PREFIX) :], WS_UPGRADE_STATUS)
            job = self.transcript.direction_digest("job")
            candidates = (combine_digests(prefix, job) for prefix in reversed(self._client_prefixes))
            digest = seal.reply_digest if seal.reply_digest in candidates else self.transcript.hexdigest()
            caller.verify_seal(seal, self.payload, WS_UPGRADE_STATUS, digest)
            return caller.record(self.payload, seal)
        else:
            raise self.client.reply_error(f"a message without a known prefix: {message[:20]!r}", "bad_message")
        self.transcript.add("job", data)
        return data
