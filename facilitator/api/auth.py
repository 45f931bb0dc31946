"""Signed-request authentication for every API call (DESIGN.md §3): signature, freshness, no replay."""

from __future__ import annotations

import random
import time

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from facilitator.models import RequestNonce
from protocol.errors import RequestAuthError
from protocol.requests import MAX_SKEW_S, verify_request

__all__ = ["signed_request"]


def signed_request(request: HttpRequest) -> str:
    """Ninja ``auth`` callable: returns the client's hotkey or raises :class:`RequestAuthError`."""
    signed = verify_request(
        request.headers,
        request.method or "GET",
        request.path,
        request.META.get("QUERY_STRING", ""),
        request.body,
    )
    allowed = settings.FACILITATOR_CLIENT_HOTKEYS
    if "*" not in allowed and signed.hotkey not in allowed:
        raise RequestAuthError(f"client {signed.hotkey} is not allowed here", code="forbidden")
    try:
        with transaction.atomic():  # a replay must not spoil an enclosing transaction
            RequestNonce.objects.create(hotkey=signed.hotkey, nonce=signed.nonce, seen_at=time.time())
    except IntegrityError:
        raise RequestAuthError("this nonce was already used: replayed request", code="replayed_nonce") from None
    if random.random() < 0.01:
        # Nonces older than the freshness window can never be accepted again; forget them.
        RequestNonce.objects.filter(seen_at__lt=time.time() - 2 * MAX_SKEW_S).delete()
    return signed.hotkey
