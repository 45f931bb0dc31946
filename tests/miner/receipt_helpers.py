"""Receipts for tests: signed by a test validator and, unless asked otherwise, countersigned by a miner."""

from __future__ import annotations

import time

from node.identity import own_keypair
from protocol.keys import Keypair
from protocol.receipts import Receipt, ReceiptKind, ReceiptPayload, countersign, sign_receipt
from protocol.spec import new_job_id

__all__ = ["make_payload", "make_receipt"]


def make_payload(
    kind: ReceiptKind | str = ReceiptKind.STARTED,
    *,
    job_id: str | None = None,
    attempt: int = 1,
    validator: Keypair,
    miner_hotkey: str | None = None,
    executor_class: str = "cpu.small",
    **finished: object,
) -> ReceiptPayload:
    """A payload naming ``validator`` and (by default) this process's own key as the miner."""
    return ReceiptPayload(
        kind=ReceiptKind(kind),
        job_id=job_id or new_job_id(),
        attempt=attempt,
        validator_hotkey=validator.hotkey,
        miner_hotkey=miner_hotkey or own_keypair().hotkey,
        executor_class=executor_class,
        at=time.time(),
        **finished,
    )


def make_receipt(
    kind: ReceiptKind | str = ReceiptKind.STARTED,
    *,
    validator: Keypair,
    miner: Keypair | None = None,
    countersigned: bool = True,
    **fields: object,
) -> Receipt:
    """A receipt ``validator`` signed, countersigned by ``miner`` (default: this process's own key)."""
    miner = miner or own_keypair()
    receipt = sign_receipt(validator, make_payload(kind, validator=validator, miner_hotkey=miner.hotkey, **fields))
    return countersign(miner, receipt) if countersigned else receipt
