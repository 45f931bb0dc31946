"""Streaming jobs, sans-I/O: signed requests, signed replies, readiness and evidence (DESIGN.md §5).

A streaming job is a server the client calls directly, through the executor's **job gateway**:

* **Readiness.** The gateway holds a fresh job keypair and a TLS certificate made for it. The
  miner signs :class:`Readiness` (job id, address, port, job public key, certificate
  fingerprint) with its hotkey; the client checks that signature and then trusts exactly that
  certificate (``cert_pem``, whose sha256 must be the signed fingerprint).
* **Requests** carry the headers of :func:`protocol.requests.sign_request` made with the
  client's per-job streaming key and :data:`REQUEST_PURPOSE`: method, path, query, the body's
  sha256, a timestamp and a nonce. The gateway refuses a missing, wrong, stale or replayed
  signature before anything reaches the job. :func:`request_digest` names a request in replies.
* **Replies** are signed by the job key over ``{job_id, request_digest, status, reply_digest,
  complete}`` (:func:`sign_reply`):

  - *buffered*: headers :data:`HEADER_REPLY_SIGNATURE` and :data:`HEADER_REPLY_DIGEST` (sha256 of
    the body as sent);
  - *streamed* (header :data:`HEADER_FRAMING` = :data:`FRAMING`): the body is a series of frames
    (:func:`encode_frame`, :class:`FrameDecoder`): ``DATA`` frames carry the job's bytes and one
    last ``END`` frame carries :class:`ReplySeal` (the signature, and whether the job finished
    its reply or broke off, with the error);
  - *websocket*: every message from the job comes prefixed (``"d"`` / ``b"d"``), and before the
    session closes (the job closed it, or the client asked with the text message :data:`WS_END`)
    the gateway sends one text message ``"s" + ReplySeal JSON`` whose ``reply_digest`` is the
    :class:`Transcript` of both directions.

* **Evidence.** :class:`Evidence` bundles one signed reply with the miner's signed readiness:
  anyone can check it with :func:`verify_evidence`, and it is what a malicious-miner report
  carries.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.errors import FrameError, SignatureError
from protocol.keys import Keypair, domain_message, verify_payload

__all__ = [
    "FRAME_DATA",
    "FRAME_END",
    "FRAMING",
    "HEADER_CONTENT_ENCODING",
    "HEADER_FRAMING",
    "HEADER_REPLY_DIGEST",
    "HEADER_REPLY_SIGNATURE",
    "HEADER_REQUEST_DIGEST",
    "REQUEST_PURPOSE",
    "TERMINATE_PATH",
    "WS_DATA_PREFIX",
    "WS_END",
    "WS_SEAL_PREFIX",
    "Evidence",
    "FrameDecoder",
    "Readiness",
    "ReplySeal",
    "Transcript",
    "cert_fingerprint",
    "combine_digests",
    "encode_frame",
    "request_digest",
    "sign_readiness",
    "sign_reply",
    "verify_evidence",
    "verify_readiness",
    "verify_reply",
]

REQUEST_PURPOSE = "stream-request"
REPLY_PURPOSE = "stream-reply"
READINESS_PURPOSE = "streaming-ready"

HEADER_REQUEST_DIGEST = "X-Grid-Request-Digest"
HEADER_REPLY_DIGEST = "X-Grid-Reply-Digest"
HEADER_REPLY_SIGNATURE = "X-Grid-Reply-Signature"
HEADER_FRAMING = "X-Grid-Framing"
# A streamed reply's framed body is not the job's encoding: the job's Content-Encoding moves here
# and applies to the DATA bytes.
HEADER_CONTENT_ENCODING = "X-Grid-Content-Encoding"
TERMINATE_PATH = "/_grid/terminate"  # the gateway's own endpoint: the client ends the job now
FRAMING = "grid-frames/1"

FRAME_DATA = 0
FRAME_END = 1
_FRAME_HEADER = struct.Struct(">BI")  # kind, payload length
MAX_FRAME_BYTES = 16 * 1024 * 1024

WS_DATA_PREFIX = "d"
WS_SEAL_PREFIX = "s"
# The client ends a session by sending this text message (never forwarded to the job): the
# gateway answers with the seal, then closes. After a close frame nothing can be sent, so a
# plain websocket close from the client ends the session unsealed.
WS_END = "\x00grid:end"


class _Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- requests --------------------------------------------------------------------------------------


def request_digest(request_payload: dict[str, str]) -> str:
    """The sha256 of exactly what the client signed for one request (see ``protocol.requests``)."""
    return hashlib.sha256(domain_message(REQUEST_PURPOSE, request_payload)).hexdigest()


# -- readiness -------------------------------------------------------------------------------------


class Readiness(_Value):
    """Where a streaming job answers and with which key; signed by the miner."""

    job_id: str
    address: str
    port: int = Field(ge=1, le=65535)
    job_public_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    cert_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the certificate's DER")

    def signed_fields(self) -> dict[str, object]:
        return self.model_dump(mode="json")


def cert_fingerprint(cert_der: bytes) -> str:
    return hashlib.sha256(cert_der).hexdigest()


def sign_readiness(miner: Keypair, readiness: Readiness) -> str:
    return miner.sign(READINESS_PURPOSE, readiness.signed_fields())


def verify_readiness(miner_hotkey: str, readiness: Readiness, signature: str) -> None:
    """Raise :class:`SignatureError` unless the miner signed exactly this readiness."""
    verify_payload(miner_hotkey, READINESS_PURPOSE, readiness.signed_fields(), signature)


# -- replies ---------------------------------------------------------------------------------------


class ReplySeal(_Value):
    """The job's signature over one reply; the last frame of a streamed reply or a websocket session."""

    request_digest: str
    status: int
    reply_digest: str
    complete: bool = True
    error: str | None = None
    signature: str

    def to_json(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":")).encode()


def _reply_payload(
    job_id: str, request_digest: str, status: int, reply_digest: str, complete: bool, error: str | None
) -> dict[str, object]:
    return {
        "job_id": job_id,
        "request_digest": request_digest,
        "status": status,
        "reply_digest": reply_digest,
        "complete": complete,
        "error": error,
    }


def sign_reply(
    job_key: Keypair,
    job_id: str,
    request_digest: str,
    status: int,
    reply_digest: str,
    *,
    complete: bool = True,
    error: str | None = None,
) -> ReplySeal:
    signature = job_key.sign(
        REPLY_PURPOSE, _reply_payload(job_id, request_digest, status, reply_digest, complete, error)
    )
    return ReplySeal(
        request_digest=request_digest,
        status=status,
        reply_digest=reply_digest,
        complete=complete,
        error=error,
        signature=signature,
    )


def verify_reply(job_public_key: str, job_id: str, seal: ReplySeal) -> None:
    """Raise :class:`SignatureError` unless the job key signed exactly this seal for ``job_id``."""
    payload = _reply_payload(job_id, seal.request_digest, seal.status, seal.reply_digest, seal.complete, seal.error)
    verify_payload(job_public_key, REPLY_PURPOSE, payload, seal.signature)


# -- framing of streamed replies -------------------------------------------------------------------


def encode_frame(kind: int, payload: bytes) -> bytes:
    if kind not in (FRAME_DATA, FRAME_END):
        raise ValueError(f"unknown frame kind {kind}")
    if len(payload) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(payload)} bytes is over {MAX_FRAME_BYTES}")
    return _FRAME_HEADER.pack(kind, len(payload)) + payload


@dataclass
class FrameDecoder:
    """Feed it the bytes of a framed body as they come; it returns the complete frames.

    Raises:
        FrameError: an unknown frame kind, an oversized frame, or anything after the END frame.
    """

    _buffer: bytearray = field(default_factory=bytearray)
    ended: bool = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self.ended and data:
            raise FrameError("data after the end of a framed reply", code="bad_framing")
        self._buffer += data
        frames = []
        while len(self._buffer) >= _FRAME_HEADER.size:
            kind, length = _FRAME_HEADER.unpack_from(self._buffer)
            if kind not in (FRAME_DATA, FRAME_END):
                raise FrameError(f"unknown frame kind {kind}", code="bad_framing")
            if length > MAX_FRAME_BYTES:
                raise FrameError(f"frame of {length} bytes is over {MAX_FRAME_BYTES}", code="bad_framing")
            end = _FRAME_HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((kind, bytes(self._buffer[_FRAME_HEADER.size : end])))
            del self._buffer[:end]
            if kind == FRAME_END:
                self.ended = True
                if self._buffer:
                    raise FrameError("data after the end of a framed reply", code="bad_framing")
                break
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still waiting for the rest."""
        return len(self._buffer)


class Transcript:
    """The digest of a websocket session: each direction's messages, in order, with their types.

    One running hash per direction, so both ends compute the same digest even when messages
    cross on the wire (each end sees its own order of the two directions, never the same one
    within a direction). :meth:`hexdigest` combines the two (:func:`combine_digests`).
    """

    def __init__(self) -> None:
        self._hashes = {"client": hashlib.sha256(), "job": hashlib.sha256()}
        self.messages = 0

    def add(self, direction: Literal["client", "job"], message: str | bytes) -> None:
        data = message.encode() if isinstance(message, str) else message
        kind = b"t" if isinstance(message, str) else b"b"
        self._hashes[direction].update(kind + struct.pack(">Q", len(data)) + data)
        self.messages += 1

    def direction_digest(self, direction: Literal["client", "job"]) -> str:
        return self._hashes[direction].hexdigest()

    def hexdigest(self) -> str:
        return combine_digests(self.direction_digest("client"), self.direction_digest("job"))


def combine_digests(client_digest: str, job_digest: str) -> str:
    """The session digest a websocket seal covers, from the two directions' digests."""
    return hashlib.sha256(f"client:{client_digest}\njob:{job_digest}".encode()).hexdigest()


# -- evidence --------------------------------------------------------------------------------------


class Evidence(_Value):
    """One signed reply, provable to a third party: what a malicious-miner report carries."""

    job_id: str
    request: dict[str, str] = Field(description="the signed request payload (protocol.requests.request_payload)")
    client_streaming_key: str
    request_signature: str = Field(description="the client's signature over ``request``")
    seal: ReplySeal
    readiness: Readiness
    miner_hotkey: str
    miner_signature: str
    reply_body_sha256: str | None = Field(None, description="for buffered replies, equal to seal.reply_digest")


def verify_evidence(evidence: Evidence) -> None:
    """Check the chain: the miner vouched for the job key, the client signed this request, and the
    job key signed this reply to it.

    Raises:
        SignatureError: any link does not hold.
    """
    verify_readiness(evidence.miner_hotkey, evidence.readiness, evidence.miner_signature)
    verify_payload(evidence.client_streaming_key, REQUEST_PURPOSE, evidence.request, evidence.request_signature)
    if evidence.reply_body_sha256 is not None and evidence.reply_body_sha256 != evidence.seal.reply_digest:
        raise SignatureError("the reply body is not the one sealed", code="bad_evidence")
    if evidence.readiness.job_id != evidence.job_id:
        raise SignatureError("the readiness is for another job", code="bad_evidence")
    if request_digest(evidence.request) != evidence.seal.request_digest:
        raise SignatureError("the reply is sealed for another request", code="bad_evidence")
    verify_reply(evidence.readiness.job_public_key, evidence.job_id, evidence.seal)
