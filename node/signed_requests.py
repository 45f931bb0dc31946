"""A Django request's signature (DESIGN.md §3), checked once however many layers ask.

The check itself is :func:`protocol.requests.verify_request`; this adapts a Django
``HttpRequest`` to it and keeps the outcome on the request, so that the facilitator's rate-limit
middleware (which needs the signer to pick a bucket) and the view behind it (which needs it to
authorize) verify the signature once between them. Nonces are the caller's to claim: the
facilitator keeps them in its database, the miner in a :class:`~protocol.requests.NonceStore`.
"""

from __future__ import annotations

from django.http import HttpRequest

from protocol.errors import RequestAuthError
from protocol.requests import SignedRequest, verify_request

__all__ = ["verified_request"]

_VERIFIED = "_grid_signed_request"  # the SignedRequest, or the RequestAuthError, once checked


def verified_request(request: HttpRequest) -> SignedRequest:
    """What the request's signature headers prove (signature and freshness, not the nonce).

    Raises:
        RequestAuthError: ``missing_signature``, ``bad_nonce``, ``stale_request`` or
            ``bad_signature``; the same one again to a second caller.
        RequestDataTooBig, RawPostDataException: Django cannot read the body (not kept: each
            caller that asks hears it from Django).
    """
    known = getattr(request, _VERIFIED, None)
    if isinstance(known, RequestAuthError):
        raise known
    if known is not None:
        return known
    try:
        signed = verify_request(
            request.headers,
            request.method or "GET",
            request.path,
            request.META.get("QUERY_STRING", ""),
            request.body,
        )
    except RequestAuthError as exc:
        setattr(request, _VERIFIED, exc)
        raise
    setattr(request, _VERIFIED, signed)
    return signed
