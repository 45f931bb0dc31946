"""Signed-request authentication for every API call (DESIGN.md §3): signature, freshness, no replay.

The signature is checked once per request (:func:`node.signed_requests.verified_request`: the
rate-limit middleware has usually checked it already); the nonce is claimed here, in the
database, so that every facilitator process refuses a replay.
"""

from __future__ import annotations

import random
import time

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from facilitator.models import RequestNonce
from node.signed_requests import verified_request
from protocol.errors import ReplayedRequest, RequestAuthError
from protocol.requests import MAX_SKEW_S, SignedRequest

__all__ = ["claim_nonce", "signed_request"]


def signed_request(request: HttpRequest) -> str:
    """Ninja ``auth`` callable: returns the client's hotkey or raises :class:`RequestAuthError`."""
    signed = verified_request(request)
    allowed = settings.FACILITATOR_CLIENT_HOTKEYS
    if "*" not in allowed and signed.hotkey not in allowed:
        raise RequestAuthError(f"client {signed.hotkey} is not allowed here", code="forbidden")
    claim_nonce(signed)
    return signed.hotkey


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
