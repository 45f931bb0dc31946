"""Signed-request authentication for every API call (DESIGN.md §3): signature, freshness, no replay.

The signature is checked once per request (:func:`node.signed_requests.verified_request`: the
rate-limit middleware has usually checked it already); the nonce is claimed here, in the
database, so that every facilitator process refuses a replay.
"""

from __future__ import annotations

import random
import time
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from ninja.security.base import AuthBase

from facilitator.models import RequestNonce
from node.signed_requests import verified_request
from protocol.errors import ReplayedRequest, RequestAuthError
from protocol.requests import HEADER_HOTKEY, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, MAX_SKEW_S, SignedRequest

__all__ = [
    "SECURITY_SCHEMES",
    "SignedRequestAuth",
    "SignedRequestNonceLater",
    "claim_nonce",
    "signed_request",
    "signed_request_nonce_later",
]

# The four headers of a signed request as OpenAPI security schemes, all four required together.
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "GridHotkey": {
        "type": "apiKey",
        "in": "header",
        "name": HEADER_HOTKEY,
        "description": "the client's ed25519 public key, 64 hex characters",
    },
    "GridTimestamp": {
        "type": "apiKey",
        "in": "header",
        "name": HEADER_TIMESTAMP,
        "description": f"unix time of the request in seconds (decimals allowed), within {MAX_SKEW_S:g} s of the "
        "server's clock",
    },
    "GridNonce": {
        "type": "apiKey",
        "in": "header",
        "name": HEADER_NONCE,
        "description": "8 to 64 ASCII letters and digits, never used before by this hotkey",
    },
    "GridSignature": {
        "type": "apiKey",
        "in": "header",
        "name": HEADER_SIGNATURE,
        "description": "hex ed25519 signature of the hotkey over b'gridmarket/request/v1\\n' + the canonical JSON "
        "(sorted keys, no spaces, UTF-8) of {method, path, query (raw), body_sha256 (hex), timestamp, nonce} "
        "(protocol/requests.py, docs/protocol.md#signed-requests-rest)",
    },
}


class SignedRequestAuth(AuthBase):
    """Ninja ``auth``: the client's hotkey, or :class:`RequestAuthError` (401; 403 ``forbidden``).

    The schema names it as the four header schemes of :data:`SECURITY_SCHEMES` (facilitator/api/site.py).
    """

    openapi_type = "apiKey"
    openapi_in = "header"
    openapi_name = HEADER_SIGNATURE

    def __call__(self, request: HttpRequest) -> str:
        signed = _allowed(request)
        claim_nonce(signed)
        return signed.hotkey


class SignedRequestNonceLater(SignedRequestAuth):
    """The same checks for an async view that claims the nonce itself, in its own database trip
    (:func:`claim_nonce` with :func:`node.signed_requests.verified_request`): the signature is
    checked on the event loop, and the request crosses to the sync thread once, not twice."""

    is_async = True  # ninja awaits it instead of running it on the sync thread

    async def __call__(self, request: HttpRequest) -> str:  # type: ignore[override]
        return _allowed(request).hotkey


def _allowed(request: HttpRequest) -> SignedRequest:
    signed = verified_request(request)
    allowed = settings.FACILITATOR_CLIENT_HOTKEYS
    if "*" not in allowed and signed.hotkey not in allowed:
        raise RequestAuthError(f"client {signed.hotkey} is not allowed here", code="forbidden")
    return signed


signed_request = SignedRequestAuth()
signed_request_nonce_later = SignedRequestNonceLater()


def claim_nonce(signed: SignedRequest) -> None:
    """Remember the request's nonce for its hotkey.

    Raises:
        ReplayedRequest: ``replayed``, the hotkey used this nonce already.
    """
    try:
        with transaction.atomic():  # a replay must not spoil an enclosing transaction
            RequestNonce.objects.create(hotkey=signed.hotkey, nonce=signed.nonce, seen_at=time.time())
    except IntegrityError:
        raise ReplayedRequest() from None
    if random.random() < 0.01:
        # Nonces older than the freshness window can never be accepted again; forget them.
        RequestNonce.objects.filter(seen_at__lt=time.time() - 2 * MAX_SKEW_S).delete()
