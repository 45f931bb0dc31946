"""Collecting receipts from the miners' signed pages (DESIGN.md §8), for scores and busy checks.

Each registered miner's pages are read from where the last run stopped
(``MinerRecord.receipts_cursor``); a receipt is kept only if both signatures verify (done by
:func:`validator.receipts_fetch.fetch_receipts`) and its validator is this one or a validator
the registry lists: a miner cannot invent work for validators that do not exist.
"""

from __future__ import annotations

import logging

from node.identity import own_keypair
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
            if receipt.payload.validator_hotkey in validators:
                new += ReceiptRecord.objects.keep(receipt)  # False: one of ours, or fetched before
        MinerRecord.objects.filter(hotkey=miner.hotkey).update(receipts_cursor=cursor, address=miner.address)
    return new
