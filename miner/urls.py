"""The miner's HTTP routes: its signed receipt pages, a health probe and its operator's status (DESIGN.md §8, §10).

``GET /api/v1/receipts?after=<cursor>&limit=<n>`` answers one :class:`~protocol.receipts.ReceiptPage`
(``limit`` defaults to 500, at most ``GRID_RECEIPTS_PAGE_MAX``). The pages are public: any
validator may check a miner's receipts, and the miner's signature over each page keeps anyone in
between from altering it. ``GET /api/v1/status`` answers only requests signed with the miner's own
key (``miner.status``). Refusals are ``{code, message, errors}``, like the facilitator's API.
"""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from miner import receipts
from miner.receipts import PageRequestError
from miner.relay import get_pool
from miner.status import authorize, miner_status
from node.identity import own_keypair
from protocol.errors import RequestAuthError

__all__ = ["health", "receipt_page", "status", "urlpatterns"]

_AUTH_STATUS = {"forbidden": 403, "busy": 429}  # any other refused signature: 401

_CURSOR = re.compile(r"[0-9]{1,18}")


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, "errors": []}, status=status)


def _only_get(request: HttpRequest) -> HttpResponse | None:
    if request.method in ("GET", "HEAD"):
        return None
    response = _error(405, "method_not_allowed", f"{request.method} is not allowed here; allowed: GET, HEAD")
    response["Allow"] = "GET, HEAD"
    return response


def _integer(request: HttpRequest, name: str, default: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not _CURSOR.fullmatch(raw):
        raise PageRequestError(f"{name} must be a non-negative integer, not {raw[:40]!r}")
    return int(raw)


def receipt_page(request: HttpRequest) -> HttpResponse:
    """One signed page of the receipts stored after ``after``."""
    if (refused := _only_get(request)) is not None:
        return refused
    try:
        after = _integer(request, "after", 0)
        limit = _integer(request, "limit", receipts.DEFAULT_PAGE_LIMIT)
        page = receipts.page(after, limit)
    except PageRequestError as exc:
        return _error(400, exc.code, str(exc))
    return JsonResponse(page.model_dump(mode="json"))


def health(request: HttpRequest) -> HttpResponse:
    if (refused := _only_get(request)) is not None:
        return refused
    return JsonResponse({"status": "ok", "role": "miner", "hotkey": own_keypair().hotkey})


async def status(request: HttpRequest) -> HttpResponse:
    """The miner's connections, capacity and recent jobs, for its operator only."""
    if (refused := _only_get(request)) is not None:
        return refused
    try:
        authorize(request)
    except RequestAuthError as exc:
        return _error(_AUTH_STATUS.get(exc.code, 401), exc.code, exc.message)
    return JsonResponse(await miner_status().describe(get_pool()))


urlpatterns = [
    path("api/v1/receipts", receipt_page, name="miner-receipts"),
    path("api/v1/health", health, name="miner-health"),
    path("api/v1/status", status, name="miner-status"),
]
