"""Collecting receipts from the miners' signed pages (DESIGN.md §8), for scores and busy checks.

Each registered miner's pages are read from where the last run stopped
(``MinerRecord.receipts_cursor``); a receipt is kept only if both signatures verify (done by
:func:`validator.receipts_fetch.receipt_pages`) and its validator is this one or a validator
the registry lists: a miner cannot invent work for validators that do not exist.

A page is stored as it comes, in one transaction with the cursor that follows it, so that a busy
miner's minute of receipts is never held in memory at once and a crash mid-way loses nothing
(the next run starts from the last page stored). Receipts stored already (most of them: this
validator's own, which its ledger wrote when it signed them) are skipped before their signatures
are checked.
"""

from __future__ import annotations

import logging

import httpx
from django.db import transaction

from node import sql
from node.identity import own_keypair
from protocol.receipts import Receipt
from protocol.registry import Role
from validator.models import MinerRecord, ReceiptRecord
from validator.receipts_fetch import DEFAULT_LIMIT, TIMEOUT_S, ReceiptFetchError, receipt_pages
from validator.registry import get_registry

__all__ = ["collect_receipts", "http_base"]

log = logging.getLogger("grid.validator.receipts")


def http_base(address: str) -> str:
    """A miner's HTTP root from its registered ws:// or wss:// address."""
    return "https://" + address[len("wss://") :] if address.startswith("wss://") else "http://" + address[5:]


_http: httpx.Client | None = None


def _client() -> httpx.Client:
    """One client for every run (the periodic thread's): a new one per miner per run built a new
    TLS context each time, and the validator's RSS rose at every fetch."""
    global _http
    if _http is None:
        _http = httpx.Client(timeout=TIMEOUT_S)
    return _http


def collect_receipts(*, limit: int = DEFAULT_LIMIT) -> int:
    """Fetch and store every registered miner's new receipts, ``limit`` to a page.

    Returns how many receipts were new (not stored when their page was read).
    """
    registry = get_registry()
    snapshot = registry.current() if registry is not None else None
    if snapshot is None:
        return 0
    validators = {neuron.hotkey for neuron in snapshot.of_role(Role.VALIDATOR)} | {own_keypair().hotkey}

    def wanted(receipts: list[Receipt]) -> list[Receipt]:
        return _not_stored([r for r in receipts if r.payload.validator_hotkey in validators])

    new = 0
    for miner in snapshot.of_role(Role.MINER):
        if not miner.address:
            continue
        record, _ = MinerRecord.objects.get_or_create(hotkey=miner.hotkey, defaults={"address": miner.address})
        try:
            for receipts, cursor in receipt_pages(
                http_base(miner.address),
                miner.hotkey,
                record.receipts_cursor,
                limit=limit,
                wanted=wanted,
                client=_client(),
            ):
                with transaction.atomic():
                    # Known already is fine: the ledger may have written one since the page was read.
                    sql.insert_many([ReceiptRecord.from_receipt(r) for r in receipts], ignore_conflicts=True)
                    MinerRecord.objects.filter(hotkey=miner.hotkey).update(receipts_cursor=cursor)
                new += len(receipts)
        except ReceiptFetchError as exc:  # the good pages before the bad one are stored
            log.info("receipts of miner %s not all fetched: %s", miner.hotkey[:12], exc)
        MinerRecord.objects.filter(hotkey=miner.hotkey).exclude(address=miner.address).update(address=miner.address)
    return new


def _not_stored(receipts: list[Receipt]) -> list[Receipt]:
    """Those of ``receipts`` with no row yet (one query for a whole page)."""
    if not receipts:
        return []
    stored = set(
        ReceiptRecord.objects.filter(job_id__in={r.payload.job_id for r in receipts}).values_list(
            "job_id", "attempt", "kind", "validator_hotkey"
        )
    )
    return [
        r
        for r in receipts
        if (r.payload.job_id, r.payload.attempt, r.payload.kind.value, r.payload.validator_hotkey) not in stored
    ]
