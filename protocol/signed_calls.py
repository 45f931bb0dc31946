"""Signed gRPC calls, sans-I/O: the REST API's signed requests carried in gRPC metadata.

A call carries ``x-grid-hotkey``, ``x-grid-timestamp``, ``x-grid-nonce`` and ``x-grid-signature``,
signed as :func:`protocol.requests.sign_request` signs a REST request, with method ``GRPC``, the
call's full method path (``/armonik.api.grpc.v1.sessions.Sessions/GetSession``) as path, an empty
query, and as body the request message serialized deterministically (map entries sorted).

Why the deterministic form rather than the bytes on the wire: a protobuf message may be
serialized in more than one way (map order), and the receiver acts on the message it parsed. It
checks the signature over that message serialized again the same way, so what it acts on is
exactly what the client signed; a field the receiver does not know changes the bytes and the
call is refused, never half-understood.

A request stream is signed as a whole: its body digest is :class:`StreamDigest`'s, over every
message of the stream in order (each deterministic serialization, prefixed by its length, so
that no two streams share a digest). The sender therefore reads its stream to the end before the
call starts; the receiver checks the signature when the stream ends, before acting on any of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from protocol.keys import Keypair
from protocol.requests import SIGNATURE_HEADERS, SignedRequest, sign_request, verify_request

__all__ = [
    "CALL_METHOD",
    "METADATA_KEYS",
    "StreamDigest",
    "call_digest",
    "call_metadata",
    "signature_of",
    "verify_call",
]

CALL_METHOD = "GRPC"
METADATA_KEYS = tuple(name.lower() for name in SIGNATURE_HEADERS)  # gRPC metadata keys are lower case
_HEADER_OF = dict(zip(METADATA_KEYS, SIGNATURE_HEADERS, strict=True))


class _Message:  # what both sides need of a protobuf message
    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


def call_digest(message: _Message | None) -> str:
    """sha256 (hex) of a request message's deterministic serialization; of nothing for a stream."""
    body = b"" if message is None else message.SerializeToString(deterministic=True)
    return hashlib.sha256(body).hexdigest()


class StreamDigest:
    """The body digest of a request stream, message by message (each one's deterministic bytes)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256(b"grid-grpc-request-stream\n")

    def add(self, body: bytes) -> None:
        self._sha.update(len(body).to_bytes(8, "big"))
        self._sha.update(body)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def call_metadata(
    keypair: Keypair, method: str, message: _Message | None, *, body_sha256: str | None = None
) -> list[tuple[str, str]]:
    """The metadata that signs one call of ``method`` with ``message``, or a stream's ``body_sha256``."""
    digest = body_sha256 if body_sha256 is not None else call_digest(message)
    headers = sign_request(keypair, CALL_METHOD, method, "", body_sha256=digest)
    return [(key, headers[_HEADER_OF[key]]) for key in METADATA_KEYS]


def verify_call(
    metadata: Iterable[tuple[str, str | bytes]] | None,
    method: str,
    message: _Message | None,
    *,
    now: float | None = None,
    body_sha256: str | None = None,
) -> SignedRequest:
    """What a call's signature proves (signature and freshness; the nonce is the server's to claim).

    Raises:
        RequestAuthError: ``missing_signature``, ``bad_nonce``, ``stale_request`` or ``bad_signature``.
    """
    headers: Mapping[str, str] = {
        _HEADER_OF[key]: value if isinstance(value, str) else value.decode("latin-1")
        for key, value in (metadata or ())
        if key in _HEADER_OF
    }
    digest = body_sha256 if body_sha256 is not None else call_digest(message)
    return verify_request(headers, CALL_METHOD, method, "", now=now, body_sha256=digest)


def signature_of(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """A call's signature entries alone (``x-grid-hotkey`` … ``x-grid-signature``), to keep as proof."""
    return {
        key: value if isinstance(value, str) else value.decode("latin-1")
        for key, value in (metadata or ())
        if key in _HEADER_OF
    }
