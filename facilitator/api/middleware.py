"""Refusals that never reach the API's handlers, in its error shape ``{code, message, errors}``.

* :class:`ApiErrorShapeMiddleware`: a wrong method, an unknown route.
* :class:`RateLimitMiddleware`: too many requests (429, ``rate_limited``, with ``Retry-After``),
  per signing hotkey (``GRID_API_RATE``/``GRID_API_BURST``) or, for a request without a valid
  signature, per peer address (``GRID_API_ADDRESS_RATE``/``GRID_API_ADDRESS_BURST``). The
  signature is checked here, once for the view too (not the nonce: the view claims it), so nobody
  can spend another hotkey's allowance by writing its name in a header. The object store's signed URLs
  (``/objects/``) are not limited: executors behind one address fetch and upload through them,
  the URL itself is the grant, and uploads stream past Django anyway (facilitator/storage/asgi.py).
  The buckets live in this process (protocol/ratelimit.py, bounded by ``GRID_LIMITS_MAX_KEYS``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import RawPostDataException

from node.signed_requests import verified_request
from protocol.errors import RequestAuthError
from protocol.ratelimit import RateLimiter
from protocol.requests import HEADER_HOTKEY

__all__ = ["ApiErrorShapeMiddleware", "ContentLengthMiddleware", "RateLimitMiddleware"]

UNLIMITED_PREFIXES = ("/objects/",)

_CODES = {404: ("not_found", "no such API route"), 405: ("method_not_allowed", "method not allowed here")}

GetResponse = Callable[[HttpRequest], HttpResponse] | Callable[[HttpRequest], Awaitable[HttpResponse]]


class _Middleware:
    """Sync and async alike, so that under ASGI a request crosses no thread on its way through.

    A sync-only middleware makes Django run the chain below it on a thread and the async view
    handler back on the loop (``async_to_sync``): two hops per request. Subclasses give
    :meth:`before` (a response to answer with instead, or ``None``) and :meth:`after`.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if iscoroutinefunction(self):
            return self._acall(request)
        refusal = self.before(request)
        return refusal if refusal is not None else self.after(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        refusal = self.before(request)
        return refusal if refusal is not None else self.after(request, await self.get_response(request))

    def before(self, request: HttpRequest) -> HttpResponse | None:
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class ContentLengthMiddleware(_Middleware):
    """What Django's ``CommonMiddleware`` did here (it runs on a thread under ASGI): a whole
    response's ``Content-Length``. Its slash-appending redirects have nothing to do on this API."""

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        return response


class ApiErrorShapeMiddleware(_Middleware):
    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        known = _CODES.get(response.status_code)
        if (
            known is None
            or not request.path.startswith("/api/")
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        code, message = known
        if response.status_code == 405 and response.get("Allow"):
            message = f"{request.method} is not allowed here; allowed: {response['Allow']}"
        shaped = JsonResponse({"code": code, "message": message, "errors": []}, status=response.status_code)
        if response.get("Allow"):
            shaped["Allow"] = response["Allow"]
        return shaped


class RateLimitMiddleware(_Middleware):
    """429 ``rate_limited`` with ``Retry-After`` (whole seconds) for a hotkey or address over its rate."""

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        self._lock = threading.Lock()
        self._limiters: dict[str, tuple[tuple[float, float, int], RateLimiter | None]] = {}

    def before(self, request: HttpRequest) -> HttpResponse | None:
        if request.path.startswith(UNLIMITED_PREFIXES):
            return None
        hotkey = _signer(request)
        kind, key = ("hotkey", hotkey) if hotkey else ("address", request.META.get("REMOTE_ADDR") or "unknown")
        limiter = self._limiter(kind)
        if limiter is None:
            return None
        with self._lock:
            wait = limiter.take(key)
        if wait <= 0.0:
            return None
        retry_after = max(1, math.ceil(wait))
        who = f"hotkey {key[:12]}…" if kind == "hotkey" else f"address {key} (unsigned requests)"
        message = (
            f"too many requests from {who}: more than {limiter.rate:g} a second "
            f"(bursts of {limiter.burst:g}); retry after {retry_after} s"
        )
        response = JsonResponse({"code": "rate_limited", "message": message, "errors": []}, status=429)
        response["Retry-After"] = str(retry_after)
        # Django would log a warning per refusal: a flood would become a flood of log lines.
        # The access log still has each one.
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response

    def _limiter(self, kind: str) -> RateLimiter | None:
        """The limiter for ``hotkey`` or ``address`` keys, made anew if its settings changed."""
        if kind == "hotkey":
            config = (float(settings.GRID_API_RATE), float(settings.GRID_API_BURST), settings.GRID_LIMITS_MAX_KEYS)
        else:
            config = (
                float(settings.GRID_API_ADDRESS_RATE),
                float(settings.GRID_API_ADDRESS_BURST),
                settings.GRID_LIMITS_MAX_KEYS,
            )
        known = self._limiters.get(kind)
        if known is not None and known[0] == config:
            return known[1]
        rate, burst, max_keys = config
        limiter = RateLimiter(rate, burst, max_keys=max_keys) if rate > 0 and burst > 0 else None
        with self._lock:
            self._limiters[kind] = (config, limiter)
        return limiter


def _signer(request: HttpRequest) -> str | None:
    """The hotkey whose valid, fresh signature the request carries; ``None`` for any other request."""
    if not request.headers.get(HEADER_HOTKEY):
        return None
    try:
        signed = verified_request(request)  # kept on the request: the view does not check it again
    except (RequestAuthError, RequestDataTooBig, RawPostDataException):
        # Unsigned after all, or a body Django refuses to read (the view will say why): by address.
        return None
    return signed.hotkey
