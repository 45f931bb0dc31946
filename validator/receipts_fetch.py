"""Fetching a miner's receipts over HTTP and checking every signature on them (DESIGN.md §8).

A miner serves the receipts it countersigned in pages signed with its hotkey
(``GET /api/v1/receipts?after=<cursor>&limit=<n>``, see ``miner/urls.py``). :func:`receipt_pages`
follows those pages from a cursor, one page at a time (:func:`fetch_receipts`: all at once),
refuses any page that is not the miner's (or not the page it asked for), and keeps only the
receipts both parties really signed for that miner: one bad receipt is dropped and logged, it
does not discard its page. No Django here: storing and scoring what comes back is the caller's
business.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import httpx
from pydantic import ValidationError

from protocol.errors import ProtocolError, SignatureError
from protocol.receipts import Receipt, ReceiptPage, verify_page, verify_receipt

__all__ = ["DEFAULT_LIMIT", "MAX_PAGES", "ReceiptFetchError", "fetch_receipts", "receipt_pages"]

log = logging.getLogger("grid.validator.receipts")

DEFAULT_LIMIT = 100  # receipts a page: a page of 500 raised the validator's RSS high-water by 13 MiB, 100 by 6
MAX_PAGES = 100  # per call; the next call carries on from the cursor returned
TIMEOUT_S = 10.0


class ReceiptFetchError(ProtocolError):
    """A page could not be fetched, or was refused.

    ``receipts`` and ``cursor`` are what the pages before it gave (verified), so a caller can
    keep them and carry on from there later.
    """

    code = "receipt_fetch_failed"

    def __init__(self, message: str, *, code: str | None = None, receipts: list[Receipt], cursor: int) -> None:
        super().__init__(message, code=code)
        self.receipts = receipts
        self.cursor = cursor


def fetch_receipts(
    http_base: str,
    miner_hotkey: str,
    after: int,
    *,
    limit: int = DEFAULT_LIMIT,
    max_pages: int = MAX_PAGES,
    client: httpx.Client | None = None,
) -> tuple[list[Receipt], int]:
    """The verified receipts a miner stored after cursor ``after``, and the cursor to carry on from.

    All of :func:`receipt_pages` at once, for callers that want a list; the arguments are its own.

    Returns:
        ``(receipts, cursor)``: each receipt verified with both signatures and naming this miner
        (others are dropped and logged), and the cursor of the last receipt read.

    Raises:
        ReceiptFetchError: as :func:`receipt_pages`; its ``receipts`` are those of the good pages
            before the bad one.
    """
    kept: list[Receipt] = []
    cursor = after
    try:
        for receipts, page_cursor in receipt_pages(
            http_base, miner_hotkey, after, limit=limit, max_pages=max_pages, client=client
        ):
            kept.extend(receipts)
            cursor = page_cursor
    except ReceiptFetchError as exc:
        exc.receipts = kept
        raise
    return kept, cursor


def receipt_pages(
    http_base: str,
    miner_hotkey: str,
    after: int,
    *,
    limit: int = DEFAULT_LIMIT,
    max_pages: int = MAX_PAGES,
    client: httpx.Client | None = None,
    wanted: Callable[[list[Receipt]], list[Receipt]] | None = None,
) -> Iterator[tuple[list[Receipt], int]]:
    """A miner's receipts after cursor ``after``, page by page, each checked as it comes.

    One page at a time is held, so a validator that fetches a busy miner's whole minute of
    receipts does not hold them all at once.

    Args:
        http_base: the miner's HTTP root, e.g. ``http://203.0.113.5:8001``.
        miner_hotkey: whose pages and receipts these must be.
        after: the cursor of the last receipt already fetched (0: from the start).
        limit: receipts asked for per page.
        max_pages: pages fetched at most in this call.
        client: an ``httpx.Client`` to send with (one is made otherwise).
        wanted: which of a page's receipts the caller wants (all when not given). Only those are
            verified and yielded: receipts the caller would drop anyway (known already, say) cost
            no signature checks.

    Yields:
        ``(receipts, cursor)`` per page: its receipts that verified with both signatures and name
        this miner (others are dropped and logged), and the cursor to carry on from after it.

    Raises:
        ReceiptFetchError: the miner could not be reached, answered with an error or with
            something that is not a page, or a page was not signed by ``miner_hotkey`` or was not
            the page asked for. Nothing from that page is yielded; ``cursor`` is where it started.
    """
    if after < 0 or limit < 1 or max_pages < 1:
        raise ValueError("after must be ≥ 0, limit and max_pages ≥ 1")
    url = http_base.rstrip("/") + "/api/v1/receipts"
    cursor = after
    own_client = client is None
    http = client if client is not None else httpx.Client(timeout=TIMEOUT_S)
    try:
        for _ in range(max_pages):
            try:
                page = _page(http, url, miner_hotkey, cursor, limit)
            except ProtocolError as exc:
                raise ReceiptFetchError(
                    f"receipts of {miner_hotkey[:12]}… after {cursor}: {exc.message}",
                    code=exc.code,
                    receipts=[],
                    cursor=cursor,
                ) from exc
            receipts = page.receipts if wanted is None else wanted(page.receipts)
            last_page = page.next_cursor is None or len(page.receipts) < limit  # short: all stored so far
            cursor = page.next_cursor if page.next_cursor is not None else cursor
            yield _verified(receipts, miner_hotkey), cursor
            if last_page:
                break
    finally:
        if own_client:
            http.close()


def _page(http: httpx.Client, url: str, miner_hotkey: str, cursor: int, limit: int) -> ReceiptPage:
    """One page, the miner's and the one asked for; any receipt in it still to be checked."""
    try:
        response = http.get(url, params={"after": cursor, "limit": limit})
    except httpx.HTTPError as exc:
        raise ProtocolError(f"could not fetch a page: {exc}", code="unreachable") from exc
    if response.status_code != 200:
        raise ProtocolError(f"the miner answered {response.status_code}: {response.text[:200]}", code="http_error")
    try:
        page = ReceiptPage.model_validate_json(response.content)
    except ValidationError as exc:
        raise ProtocolError(f"not a receipt page: {exc.errors()[0]['msg']}", code="bad_page") from exc
    verify_page(page, miner_hotkey)  # SignatureError: another miner's page, or altered on the way
    if page.cursor != cursor:
        raise SignatureError(f"asked for receipts after {cursor}, got the page after {page.cursor}", code="wrong_page")
    if len(page.receipts) > limit:
        raise ProtocolError(f"asked for {limit} receipts, got {len(page.receipts)}", code="bad_page")
    if page.next_cursor is not None and page.next_cursor <= cursor:
        # Pages must move forward, or a miner could keep a validator fetching forever.
        raise ProtocolError(f"the next cursor {page.next_cursor} does not follow {cursor}", code="bad_page")
    return page


def _verified(receipts: list[Receipt], miner_hotkey: str) -> list[Receipt]:
    kept = []
    for receipt in receipts:
        try:
            verify_receipt(receipt, miner_hotkey=miner_hotkey)
        except SignatureError as exc:
            payload = receipt.payload
            log.warning(
                "dropped a %s receipt of job %s from miner %s…: %s (%s)",
                payload.kind.value,
                payload.job_id,
                miner_hotkey[:12],
                exc.message,
                exc.code,
            )
            continue
        kept.append(receipt)
    return kept
