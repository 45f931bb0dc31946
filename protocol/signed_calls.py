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
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from protocol.keys import Keypair
from protocol.requests import SIGNATURE_HEADERS, SignedRequest, sign_request, verify_request

__all__ = ["CALL_METHOD", "METADATA_KEYS", "call_digest", "call_metadata", "verify_call"]

CALL_METHOD = "GRPC"
METADATA_KEYS = tuple(name.lower() for name in SIGNATURE_HEADERS)  # gRPC metadata keys are lower case
_HEADER_OF = dict(zip(METADATA_KEYS, SIGNATURE_HEADERS, strict=True))


class _Message:  # what both sides need of a protobuf message
    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


def call_digest(message: _Message | None) -> str:
    """sha256 (hex) of a request message's deterministic serialization; of nothing for a stream."""
    body = b"" if message is None else message.SerializeToString(deterministic=True)
    return hashlib.sha256(body).hexdigest()


def call_metadata(keypair: Keypair, method: str, message: _Message | None) -> list[tuple[str, str]]:
    """The metadata that signs one call of ``method`` with ``message`` (``None``: a request stream)."""
    headers = sign_request(keypair, CALL_METHOD, method, "", body_sha256=call_digest(message))
    return [(key, headers[_HEADER_OF[key]]) for key in METADATA_KEYS]


def verify_call(
    metadata: Iterable[tuple[str, str | bytes]] | None,
    method: str,
    message: _Message | None,
    *,
    now: float | None = None,
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
    return verify_request(headers, CALL_METHOD, method, "", now=now, body_sha256=call_digest(message))
