"""The miner's receipts: kept once countersigned, served in signed pages, shown when busy (DESIGN.md §8).

A validator sends each receipt of a job attempt (``started``, ``accepted``, ``finished``) with its
signature; the consumer countersigns it and :func:`store` keeps it. :func:`page` serves them to
any validator, in the order they were stored, signed with the miner's hotkey; the row id is the
cursor. :func:`busy_receipts` is what a ``busy`` decline shows: the receipts of the jobs holding
every executor of the class.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction

from miner.executors.pool import ExecutorSlot
from miner.models import MinerReceipt
from miner.relay import get_pool
from node import sql
from node.identity import own_keypair
from protocol.messages import JobInitial
from protocol.receipts import Receipt, ReceiptKind, ReceiptPage, ReceiptPayload, sign_page

__all__ = [
    "BUSY_RECEIPTS_MAX",
    "DEFAULT_PAGE_LIMIT",
    "PageRequestError",
    "ReceiptConflict",
    "busy_receipts",
    "had_job",
    "page",
    "page_max",
    "recently_accepted",
    "reserved_attempt",
    "store",
    "store_each",
]

DEFAULT_PAGE_LIMIT = 500
DEFAULT_PAGE_MAX = 5000
_PAGE_HARD_MAX = 10_000  # what a ReceiptPage may hold
BUSY_RECEIPTS_MAX = 1000  # what a JobDeclined may carry
RECENT_ACCEPTED_MAX = 10_000

# The attempts whose ``accepted`` receipt this process stored lately: a ``finished`` receipt
# usually follows within seconds, and :func:`had_job` then needs no query.
_recent_accepted: OrderedDict[tuple[str, int, str, str], None] = OrderedDict()
_recent_lock = threading.Lock()


class ReceiptConflict(ValueError):
    """Another receipt is already stored under the same (job, attempt, kind, validator)."""

    code = "receipt_conflict"

    def __init__(self, message: str, payload: ReceiptPayload) -> None:
        super().__init__(message)
        self.payload = payload


class PageRequestError(ValueError):
    """A page asked for with a bad cursor or limit."""

    code = "bad_page_request"


def store(receipt: Receipt) -> Receipt:
    """Keep a countersigned receipt; the same receipt again is kept once.

    Returns:
        The stored receipt (equal to ``receipt``).

    Raises:
        ValueError: the receipt is not countersigned.
        ReceiptConflict: a different receipt is stored under the same key.
    """
    if not receipt.complete:
        raise ValueError("only a countersigned receipt is kept")
    payload = receipt.payload
    key = {
        "job_id": payload.job_id,
        "attempt": payload.attempt,
        "kind": payload.kind.value,
        "validator_hotkey": payload.validator_hotkey,
    }
    row = MinerReceipt(
        **key, executor_class=payload.executor_class, at=payload.at, receipt=receipt.model_dump(mode="json")
    )
    try:
        with transaction.atomic():
            sql.insert(row)  # three a job: the ORM's compiling cost more than the statement
    except IntegrityError:
        stored = MinerReceipt.objects.filter(**key).first()
        if stored is None:
            raise  # not the unique key: something else went wrong
    else:
        if payload.kind is ReceiptKind.ACCEPTED:
            _remember_accepted(payload)
        return receipt
    kept = Receipt.model_validate(stored.receipt)
    if kept != receipt:
        raise ReceiptConflict(
            f"another {payload.kind.value} receipt is kept for job {payload.job_id} attempt {payload.attempt}", payload
        )
    return kept


def store_each(signed: list[Receipt]) -> list[Receipt | ReceiptConflict]:
    """:func:`store` each receipt (one database trip for those of a frame): kept, or why not."""
    outcomes: list[Receipt | ReceiptConflict] = []
    for receipt in signed:
        try:
            outcomes.append(store(receipt))
        except ReceiptConflict as exc:
            outcomes.append(exc)
    return outcomes


def had_job(payload: ReceiptPayload) -> bool:
    """Did this miner countersign the ``accepted`` receipt of the attempt ``payload`` is about?"""
    if recently_accepted(payload):
        return True
    return MinerReceipt.objects.filter(
        job_id=payload.job_id,
        attempt=payload.attempt,
        kind=ReceiptKind.ACCEPTED.value,
        validator_hotkey=payload.validator_hotkey,
        executor_class=payload.executor_class,
    ).exists()


def recently_accepted(payload: ReceiptPayload) -> bool:
    """Whether this process stored the ``accepted`` receipt of ``payload``'s attempt lately (no query)."""
    with _recent_lock:
        return _accepted_key(payload) in _recent_accepted


def _accepted_key(payload: ReceiptPayload) -> tuple[str, int, str, str]:
    return (payload.job_id, payload.attempt, payload.validator_hotkey, payload.executor_class)


def _remember_accepted(payload: ReceiptPayload) -> None:
    with _recent_lock:
        _recent_accepted[_accepted_key(payload)] = None
        while len(_recent_accepted) > RECENT_ACCEPTED_MAX:
            _recent_accepted.popitem(last=False)


def page_max() -> int:
    """The largest page served (``GRID_RECEIPTS_PAGE_MAX``, within what a page may hold)."""
    return min(int(getattr(settings, "MINER_RECEIPTS_PAGE_MAX", DEFAULT_PAGE_MAX)), _PAGE_HARD_MAX)


def page(after: int, limit: int = DEFAULT_PAGE_LIMIT) -> ReceiptPage:
    """The receipts stored after cursor ``after``, at most ``limit``, signed with the miner's key.

    ``next_cursor`` is the cursor of the page's last receipt (ask for what follows it), or
    ``None`` when nothing is stored after ``after`` yet. A page with fewer than ``limit``
    receipts holds everything stored so far.

    Raises:
        PageRequestError: ``after`` is negative or ``limit`` is outside 1 … :func:`page_max`.
    """
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise PageRequestError(f"after must be a cursor (an integer ≥ 0), not {after!r}")
    most = page_max()
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise PageRequestError(f"limit must be an integer from 1 to {most}, not {limit!r}")
    rows = list(MinerReceipt.objects.filter(id__gt=after).order_by("id").values_list("id", "receipt")[:limit])
    keypair = own_keypair()
    unsigned = ReceiptPage(
        miner_hotkey=keypair.hotkey,
        cursor=after,
        next_cursor=rows[-1][0] if rows else None,
        receipts=[Receipt.model_validate(receipt) for _, receipt in rows],
        issued_at=time.time(),
    )
    return sign_page(keypair, unsigned)


def reserved_attempt(slot: ExecutorSlot) -> int | None:
    """The attempt of the job ``slot`` is reserved for (from the ``job.initial`` that reserved it)."""
    if slot.initial_frame is None:
        return None
    return JobInitial.model_validate_json(slot.initial_frame).attempt


async def busy_receipts(executor_class: str) -> list[Receipt]:
    """The ``started`` / ``accepted`` receipts of the jobs now holding executors of ``executor_class``.

    Only jobs that hold an executor slot of the class count, at the attempt they hold it for,
    and only while no ``finished`` receipt says they are over. At most :data:`BUSY_RECEIPTS_MAX`
    receipts (one per job when there are more).
    """
    # Read the pool here, on its event loop; the database is read on a worker thread.
    running = {
        job_id: attempt
        for job_id, slot in list(get_pool().jobs.items())
        if slot.executor_class == executor_class and (attempt := reserved_attempt(slot)) is not None
    }
    if not running:
        return []
    return await database_sync_to_async(_receipts_of_running)(running, executor_class)


def _receipts_of_running(running: dict[str, int], executor_class: str) -> list[Receipt]:
    rows = list(
        MinerReceipt.objects.filter(job_id__in=list(running), executor_class=executor_class)
        .order_by("id")
        .values_list("job_id", "attempt", "kind", "validator_hotkey", "receipt")
    )
    over = {(job, attempt, validator) for job, attempt, kind, validator, _ in rows if kind == ReceiptKind.FINISHED}
    shown = [
        (job, kind, receipt)
        for job, attempt, kind, validator, receipt in rows
        if kind != ReceiptKind.FINISHED and attempt == running[job] and (job, attempt, validator) not in over
    ]
    if len(shown) > BUSY_RECEIPTS_MAX:
        # One receipt proves a job as well as two: keep each job's latest (its ``accepted``).
        shown = list({job: (job, kind, receipt) for job, kind, receipt in shown}.values())
    return [Receipt.model_validate(receipt) for _, _, receipt in shown[:BUSY_RECEIPTS_MAX]]
