"""Collecting receipts from the miners' signed pages (DESIGN.md §8), for scores and busy checks.

Each registered miner's pages are read from where the last run stopped
(``MinerRecord.receipts_cursor``); a receipt is kept only if both signatures verify (done by
:func:`validator.receipts_fetch.fetch_receipts`) and its validator is this one or a validator
the registry lists: a miner cannot invent work for validators that do not exist.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError

from grid.identity import own_keypair
from protocol.registry import Role
from validator.models import MinerRecord, ReceiptRecord
from validator.receipts_fetch import ReceiptFetchError, fetch_receipts
from validator.registry import get_registry

__all__ = ["collect_receipts", "http_base"]

log = logging.getLogger("grid.validator.receipts")


def http_base(address: str) -> str:
    """A miner's HTTP root from its registered ws:// or wss:// address."""
    return "https://" + address[len("wss://") :] if address.startswith("wss://") else "http://" + address[5:]


def collect_receipts() -> int:
    """Returns how many receipts were new."""
    registry = get_registry()
    snapshot = registry.current() if registry is not None else None
    if snapshot is None:
        return 0
    validators = {neuron.hotkey for neuron in snapshot.of_role(Role.VALIDATOR)} | {own_keypair().hotkey}
    new = 0
    for miner in snapshot.of_role(Role.MINER):
        if not miner.address:
            continue
        record, _ = MinerRecord.objects.get_or_create(hotkey=miner.hotkey, defaults={"address": miner.address})
        try:
            receipts, cursor = fetch_receipts(http_base(miner.address), miner.hotkey, record.receipts_cursor)
        except ReceiptFetchError as exc:  # keep what the good pages before the bad one gave
            log.info("receipts of miner %s not all fetched: %s", miner.hotkey[:12], exc)
            receipts, cursor = list(exc.receipts), exc.cursor
        for receipt in receipts:
            payload = receipt.payload
            if payload.validator_hotkey not in validators:
                continue
            try:
                ReceiptRecord.objects.create(
                    job_id=payload.job_id,
                    attempt=payload.attempt,
                    kind=payload.kind.value,
                    validator_hotkey=payload.validator_hotkey,
                    miner_hotkey=payload.miner_hotkey,
                    executor_class=payload.executor_class,
                    at=payload.at,
                    status=payload.status or "",
                    receipt=receipt.model_dump(mode="json"),
                )
                new += 1
            except IntegrityError:
                pass  # known already (one of ours, or fetched before)
        MinerRecord.objects.filter(hotkey=miner.hotkey).update(receipts_cursor=cursor, address=miner.address)
    return new
