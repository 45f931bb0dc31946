"""Signed client requests, sans-I/O (DESIGN.md §3).

The client sends ``X-Grid-Hotkey``, ``X-Grid-Timestamp``, ``X-Grid-Nonce`` and ``X-Grid-Signature``;
the signature covers the method, path, raw query, sha256 of the body, timestamp and nonce.
:func:`verify_request` checks signature and freshness; remembering nonces is the server's job
(it must refuse one it has seen within the freshness window, raising
:class:`~protocol.errors.ReplayedRequest`): :class:`NonceStore` does it in memory for a single
process (the facilitator keeps them in its database instead).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Mapping

from protocol.errors import NonceStoreFull, ReplayedRequest, RequestAuthError, SignatureError
from protocol.keys import Keypair, verify_payload

__all__ = [
    "HEADER_HOTKEY",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "MAX_SKEW_S",
    "SIGNATURE_HEADERS",
    "NonceStore",
    "NonceStoreFull",
    "SignedRequest",
    "body_digest",
    "check_fresh",
    "check_nonce",
    "request_payload",
    "sign_request",
    "signature_headers",
    "verify_request",
]

HEADER_HOTKEY = "X-Grid-Hotkey"
HEADER_TIMESTAMP = "X-Grid-Timestamp"
HEADER_NONCE = "X-Grid-Nonce"
HEADER_SIGNATURE = "X-Grid-Signature"
SIGNATURE_HEADERS = (HEADER_HOTKEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
MAX_SKEW_S = 60.0
PURPOSE = "request"
DEFAULT_NONCE_CAPACITY = 200_000
_NONCE = re.compile(r"[A-Za-z0-9]{8,64}")


def request_payload(method: str, path: str, query: str, body_sha256: str, timestamp: str, nonce: str) -> dict[str, str]:
    """What a request signature covers (also what a streaming job's reply signature refers to)."""
    return {
        "method": method.upper(),
        "path": path,
        "query": query,
        "body_sha256": body_sha256,
        "timestamp": timestamp,
        "nonce": nonce,
    }


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def sign_request(
    keypair: Keypair,
    method: str,
    path: str,
    query: str,
    body: bytes = b"",
    *,
    now: float | None = None,
    purpose: str = PURPOSE,
    body_sha256: str | None = None,
) -> dict[str, str]:
    """The headers that authenticate one request.

    ``body_sha256`` stands for ``body`` when the body is streamed (hashed ahead by the caller);
    ``purpose`` separates REST requests from requests to a streaming job.
    """
    timestamp = f"{time.time() if now is None else now:.3f}"
    nonce = secrets.token_hex(16)
    digest = body_sha256 if body_sha256 is not None else body_digest(body)
    signature = keypair.sign(purpose, request_payload(method, path, query, digest, timestamp, nonce))
    return {
        HEADER_HOTKEY: keypair.hotkey,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature,
    }


class SignedRequest:
    """What a verified request proved: who sent it, and its nonce (for replay tracking)."""

    __slots__ = ("hotkey", "nonce", "payload", "timestamp")

    def __init__(self, hotkey: str, nonce: str, timestamp: float, payload: dict[str, str] | None = None) -> None:
        self.hotkey, self.nonce, self.timestamp = hotkey, nonce, timestamp
        self.payload = payload or {}

    def __repr__(self) -> str:
        return f"<SignedRequest {self.hotkey[:12]}… nonce={self.nonce}>"


def verify_request(
    headers: Mapping[str, str],
    method: str,
    path: str,
    query: str,
    body: bytes = b"",
    *,
    now: float | None = None,
    max_skew: float = MAX_SKEW_S,
    purpose: str = PURPOSE,
    body_sha256: str | None = None,
) -> SignedRequest:
    """Check a request's signature headers.

    Args:
        headers: a case-insensitive mapping of the request's headers.
        body_sha256: the body's digest, when the caller hashed a streamed body itself.

    Raises:
        RequestAuthError: ``missing_signature``, ``stale_request`` or ``bad_signature``.
    """
    hotkey, timestamp, nonce, signature = signature_headers(headers)
    check_nonce(nonce)
    sent_at = check_fresh(timestamp, time.time() if now is None else now, max_skew)
    digest = body_sha256 if body_sha256 is not None else body_digest(body)
    payload = request_payload(method, path, query, digest, timestamp, nonce)
    try:
        verify_payload(hotkey, purpose, payload, signature)
    except SignatureError as exc:
        raise RequestAuthError(f"request signature refused: {exc.message}", code="bad_signature") from exc
    return SignedRequest(hotkey, nonce, sent_at, payload)


def signature_headers(headers: Mapping[str, str]) -> tuple[str, str, str, str]:
    """The hotkey, timestamp, nonce and signature headers, in that order.

    Raises:
        RequestAuthError: ``missing_signature``, naming the headers missing or empty.
    """
    values = [headers.get(name) for name in SIGNATURE_HEADERS]
    missing = [name for name, value in zip(SIGNATURE_HEADERS, values, strict=True) if not value]
    if missing:
        raise RequestAuthError(f"missing header(s): {', '.join(missing)}", code="missing_signature")
    hotkey, timestamp, nonce, signature = (str(value) for value in values)
    return hotkey, timestamp, nonce, signature


def check_nonce(nonce: str) -> None:
    """Raises :class:`RequestAuthError` ``bad_nonce`` unless ``nonce`` is 8-64 alphanumeric characters."""
    if not _NONCE.fullmatch(nonce):
        raise RequestAuthError("nonce must be 8-64 alphanumeric characters", code="bad_nonce")


def check_fresh(timestamp: str, now: float, max_skew: float = MAX_SKEW_S) -> float:
    """The time a request says it was sent, if within ``max_skew`` of ``now``.

    Raises:
        RequestAuthError: ``stale_request``, the timestamp is not a number or too far from ``now``.
    """
    try:
        sent_at = float(timestamp)
    except ValueError:
        raise RequestAuthError("timestamp is not a number", code="stale_request") from None
    if not abs(now - sent_at) <= max_skew:
        raise RequestAuthError(f"timestamp is more than {max_skew:.0f}s away from server time", code="stale_request")
    return sent_at


class NonceStore:
    """Nonces seen in the last ``ttl`` seconds (default twice :data:`MAX_SKEW_S`); at most ``capacity``."""

    def __init__(self, ttl: float = 2 * MAX_SKEW_S, capacity: int = DEFAULT_NONCE_CAPACITY) -> None:
        self._ttl, self._capacity = ttl, capacity
        self._expiry: dict[str, float] = {}  # insertion order == expiry order

    def __repr__(self) -> str:
        return f"<NonceStore {len(self._expiry)}/{self._capacity}>"

    def __len__(self) -> int:
        return len(self._expiry)

    def _prune(self, now: float) -> None:
        while self._expiry:
            oldest = next(iter(self._expiry))
            if self._expiry[oldest] > now:
                break
            del self._expiry[oldest]

    def seen(self, nonce: str) -> bool:
        self._prune(time.monotonic())
        return nonce in self._expiry

    def claim(self, nonce: str) -> None:
        """Remember ``nonce``.

        Raises:
            ReplayedRequest: ``replayed``, the nonce was seen within the window.
            NonceStoreFull: the store holds ``capacity`` nonces already.
        """
        now = time.monotonic()
        self._prune(now)
        if nonce in self._expiry:
            raise ReplayedRequest()
        if len(self._expiry) >= self._capacity:
            raise NonceStoreFull("too many requests in the replay window")
        self._expiry[nonce] = now + self._ttl
