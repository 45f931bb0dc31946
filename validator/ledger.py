"""The validator's record of the marketplace, kept while it drives jobs (DESIGN.md §8).

The job driver tells the ledger what happens (a routing decision, a status, a receipt the miner
countersigned, an incident) and carries on: the ledger updates the in-memory
:class:`~validator.reputation.Reputation` at once, so the next routing decision sees it, and
queues the database rows, which a background task writes in batches (no database round trip on
the job's hot path). :class:`NullLedger` records nothing, for drivers run without a database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction

from node import sql
from protocol.errors import SignatureError
from protocol.keys import Keypair
from protocol.messages import ClassCapacity, JobResult, JobStatusUpdate, StatusKey
from protocol.receipts import Receipt, ReceiptKind, ReceiptPayload, outputs_digest, sign_receipt, verify_receipt
from validator.reputation import Reputation, load_reputation
from validator.routing import Decision

__all__ = ["Ledger", "NullLedger", "result_digest"]

log = logging.getLogger("grid.validator.ledger")
BUSY_RECEIPT_AGE_S = 24 * 3600.0  # a receipt older than this cannot show the miner is busy now


def result_digest(result: JobResult) -> str:
    """The outputs digest of a result: its uploaded outputs and logs, by path."""
    return outputs_digest([(record.path, record.sha256) for record in [*result.outputs, *result.logs]])


class NullLedger:
    """Records nothing; routing sees no incidents and no blacklist."""

    def __init__(self) -> None:
        self.reputation = Reputation()

    def routed(self, job_id: str, attempt: int, decision: Decision) -> None:
        pass

    def status(self, update: JobStatusUpdate) -> None:
        pass

    def receipt(self, kind: ReceiptKind, job_id: str, attempt: int, miner: str, executor_class: str,
                **finished: Any) -> Receipt | None:  # fmt: skip
        return None

    def countersigned(self, miner_hotkey: str, receipt: Receipt) -> None:
        pass

    def incident(self, miner_hotkey: str, kind: str, job_id: str = "", message: str = "",
                 evidence: dict | None = None) -> None:  # fmt: skip
        pass

    def busy_proven(
        self, miner_hotkey: str, executor_class: str, receipts: list[Receipt], total: int,
        known_jobs: set[str] = frozenset(),  # type: ignore[assignment]
    ) -> bool:  # fmt: skip
        return True

    def manifest(self, miner_hotkey: str, classes: dict[str, ClassCapacity], connected: bool) -> None:
        pass


class Ledger(NullLedger):
    """Args:
    keypair: the validator's key, signing its half of every receipt.
    blacklist_s: how long a proven malicious miner stays blacklisted.
    trusted: the miners trusted for cross-validation (shown as such).
    """

    def __init__(
        self, keypair: Keypair, *, blacklist_s: float = 24 * 3600.0, trusted: frozenset[str] = frozenset()
    ) -> None:
        super().__init__()
        self.keypair = keypair
        self.blacklist_s = blacklist_s
        self.trusted = trusted
        # Validators whose receipts count as proof (the registry's, set by the connector); this
        # validator's own always do. Anyone can make a key: a receipt signed by an unknown
        # "validator" proves nothing.
        self.known_validators: Callable[[], frozenset[str]] = frozenset
        self._noted: list[Callable[[Reputation], None]] = []  # reputation changes since the last reload began
        self._rows = _Rows()
        self._manifests: dict[str, Callable[[], None]] = {}  # per miner, the newest not yet written
        self._manifest_shapes: dict[str, tuple[bool, dict[str, Any]]] = {}  # what a manifest says but free counts
        self._manifest_due = False  # a queued manifest changes more than free counts
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Ledger {self.keypair.hotkey[:12]}… {len(self._rows) + len(self._manifests)} rows queued>"

    # -- what the driver tells it --------------------------------------------------------------

    def routed(self, job_id: str, attempt: int, decision: Decision) -> None:
        from validator.models import RoutingDecision

        row = RoutingDecision(
            job_id=job_id,
            attempt=attempt,
            at=time.time(),
            executor_class=decision.executor_class,
            chosen=decision.chosen.hotkey if decision.chosen else "",
            reason=decision.reason,
            candidates=decision.record(),
            skipped={**decision.skipped, "eligible": decision.eligible},
        )
        self._rows.routings.append(row)
        self._wake.set()

    def status(self, update: JobStatusUpdate) -> None:
        from validator.models import JobEvent

        detail = dict(update.detail)
        if update.failure is not None:
            detail["failure"] = update.failure.model_dump(mode="json", exclude={"logs"})
        row = JobEvent(
            job_id=update.job_id,
            status=update.status.value,
            attempt=update.attempt,
            miner_hotkey=update.miner or "",
            at=update.at,
            detail=detail,
        )
        self._rows.events.append(row)
        if not update.status.is_terminal:  # the end is written by the connector itself, at once
            self._rows.progress.append(update)
        self._wake.set()

    def receipt(self, kind: ReceiptKind, job_id: str, attempt: int, miner: str, executor_class: str,
                **finished: Any) -> Receipt:  # fmt: skip
        """The validator's half of a receipt for the miner (``finished``: status, duration_s, outputs_digest)."""
        payload = ReceiptPayload(
            kind=kind,
            job_id=job_id,
            attempt=attempt,
            validator_hotkey=self.keypair.hotkey,
            miner_hotkey=miner,
            executor_class=executor_class,
            at=time.time(),
            **finished,
        )
        return sign_receipt(self.keypair, payload)

    def countersigned(self, miner_hotkey: str, receipt: Receipt) -> None:
        """A receipt the miner sent back: kept only if both signatures hold and it is ours."""
        try:
            verify_receipt(receipt, miner_hotkey=miner_hotkey, validator_hotkey=self.keypair.hotkey)
        except SignatureError as exc:
            log.warning("miner %s returned a receipt that does not verify: %s", miner_hotkey[:12], exc.message)
            return
        self._rows.receipts.append(receipt)
        self._wake.set()

    def incident(self, miner_hotkey: str, kind: str, job_id: str = "", message: str = "",
                 evidence: dict | None = None) -> None:  # fmt: skip
        from validator.models import Incident

        at = time.time()
        self._note(lambda reputation: reputation.note_incident(miner_hotkey, at))
        log.warning("incident %s by miner %s (job %s): %s", kind, miner_hotkey[:12], job_id or "-", message)
        row = Incident(
            miner_hotkey=miner_hotkey, kind=kind, job_id=job_id, at=at, message=message[:2000], evidence=evidence or {}
        )
        self._queue(row.save)

    def blacklist(self, miner_hotkey: str, reason: str, kind: str, job_id: str = "", evidence: dict | None = None,
                  seconds: float | None = None) -> float:  # fmt: skip
        """Record the incident and blacklist the miner; returns until when."""
        from validator.models import BlacklistEntry, Incident

        now = time.time()
        until = now + (seconds if seconds is not None else self.blacklist_s)
        self._note(lambda reputation: reputation.note_incident(miner_hotkey, now))
        self._note(lambda reputation: reputation.note_blacklist(miner_hotkey, until, reason))
        log.warning("blacklisting miner %s until %.0f: %s", miner_hotkey[:12], until, reason)

        def write() -> None:
            with transaction.atomic():
                incident = Incident.objects.create(
                    miner_hotkey=miner_hotkey, kind=kind, job_id=job_id, at=now, message=reason[:2000],
                    evidence=evidence or {},
                )  # fmt: skip
                BlacklistEntry.objects.create(
                    miner_hotkey=miner_hotkey, reason=reason[:200], until=until, created_at=now, incident=incident
                )

        self._queue(write)
        return until

    def busy_proven(
        self, miner_hotkey: str, executor_class: str, receipts: list[Receipt], total: int,
        known_jobs: set[str] = frozenset(),  # type: ignore[assignment]
    ) -> bool:  # fmt: skip
        """Does a ``busy`` decline show, with valid receipts, a job on every executor of the class?

        ``known_jobs``: this validator's own jobs on that miner in the class, not ended: they
        count without receipts (a job just offered has none yet).

        Receipts of this validator and of registered ones count (the miner may be busy with
        another validator's jobs); each must verify, name this miner and class, be ``started`` or
        ``accepted``, and be recent.
        A decline that does not prove itself is an incident.
        """
        now = time.time()
        validators = self.known_validators()
        jobs: set[tuple[str, int]] = {(job_id, 0) for job_id in known_jobs}
        for receipt in receipts:
            payload = receipt.payload
            if payload.validator_hotkey != self.keypair.hotkey and payload.validator_hotkey not in validators:
                continue
            try:
                verify_receipt(receipt, miner_hotkey=miner_hotkey)
            except SignatureError:
                continue
            if payload.kind is ReceiptKind.FINISHED or payload.executor_class != executor_class:
                continue
            if now - payload.at > BUSY_RECEIPT_AGE_S:
                continue
            if payload.job_id not in known_jobs:
                jobs.add((payload.job_id, payload.attempt))
        if len(jobs) >= max(total, 1):
            return True
        self.incident(
            miner_hotkey,
            "busy_unproven",
            message=f"declined as busy showing {len(jobs)} valid receipt(s) for {total} {executor_class} executor(s)",
        )
        return False

    def acknowledged(self, statuses: list[StatusKey]) -> None:
        """The facilitator stored these statuses: the jobs ended by one are marked so (no resend)."""
        ended = [key for key in statuses if key.status.is_terminal]
        if ended:
            self._rows.acks.extend(ended)
            self._wake.set()

    def manifest(self, miner_hotkey: str, classes: dict[str, ClassCapacity], connected: bool) -> None:
        from validator.models import MinerRecord

        manifest = {name: capacity.model_dump(mode="json") for name, capacity in classes.items()}

        def write() -> None:
            MinerRecord.objects.update_or_create(
                hotkey=miner_hotkey,
                defaults={"manifest": manifest, "connected": connected, "trusted": miner_hotkey in self.trusted},
            )

        # A busy miner sends a manifest with every job it takes or ends: only the newest is worth
        # a row write, and a change of free counts alone does not call for one (it waits for
        # the reload's flush, within ``run``'s reload_s: the dashboard's counts lag that much).
        self._manifests[miner_hotkey] = write
        shape = (connected, {name: (c.total, c.spec) for name, c in classes.items()})
        if self._manifest_shapes.get(miner_hotkey) != shape:
            self._manifest_shapes[miner_hotkey] = shape
            self._manifest_due = True
            self._wake.set()

    # -- the database side ---------------------------------------------------------------------

    def _note(self, change: Callable[[Reputation], None]) -> None:
        """Apply to the reputation now, and again to the one a reload in progress will bring."""
        change(self.reputation)
        self._noted.append(change)

    def _queue(self, write: Callable[[], None]) -> None:
        self._rows.writes.append(write)
        self._wake.set()

    async def flush(self, free_counts: bool = True) -> None:
        """Write every queued row now; with ``free_counts=False``, not the manifests that changed
        only their free counts."""
        rows, self._rows = self._rows, _Rows()
        if free_counts or self._manifest_due:
            rows.writes.extend(self._manifests.values())
            self._manifests, self._manifest_due = {}, False
        if rows:
            await sync_to_async(_write_all, thread_sensitive=True)(rows)

    async def run(self, reload_s: float = 2.0, gather_s: float = 0.02) -> None:
        """Write queued rows as they come and reload the reputation every ``reload_s``.

        A write waits ``gather_s`` for the rows that follow (a busy validator queues several per
        job): one thread hop and one commit for all of them. Nothing waits on these rows but the
        reload and the dashboard, and the reload flushes first.
        """
        loop = asyncio.get_running_loop()
        next_reload = 0.0
        while True:
            if loop.time() >= next_reload:
                await self.flush()  # the reload must see our own rows
                self._noted = []
                reputation = await sync_to_async(load_reputation, thread_sensitive=True)()
                for change in self._noted:  # noted while the database was read: not in it yet
                    change(reputation)
                self.reputation, self._noted = reputation, []
                next_reload = loop.time() + reload_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_reload - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(gather_s)
            await self.flush(free_counts=False)


@dataclass
class _Rows:
    """The rows queued for one batch: the many of a running job, kept by kind so that each kind
    is one statement; the rare ones (incidents, blacklistings, manifests) as writes of their own."""

    events: list[Any] = field(default_factory=list)  # validator.models.JobEvent, unsaved
    routings: list[Any] = field(default_factory=list)  # validator.models.RoutingDecision, unsaved
    progress: list[JobStatusUpdate] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    acks: list[StatusKey] = field(default_factory=list)  # jobs' ends the facilitator acknowledged
    writes: list[Callable[[], None]] = field(default_factory=list)

    def __len__(self) -> int:
        kinds = (self.events, self.routings, self.progress, self.receipts, self.acks, self.writes)
        return sum(map(len, kinds))

    def one_by_one(self) -> list[Callable[[], None]]:
        """The same rows as a write each, for when the batch as a whole fails."""
        return [
            *(row.save for row in self.routings),
            *(row.save for row in self.events),
            *((lambda update=update: _progress([update])) for update in self.progress),
            *((lambda receipt=receipt: _store_receipt(receipt)) for receipt in self.receipts),
            *((lambda key=key: _acknowledge([key])) for key in self.acks),
            *self.writes,
        ]


def _write_all(rows: _Rows) -> None:
    """Write a batch in one transaction (one commit, not one per row): the hot rows a statement
    per kind, the others each in a savepoint so that one that fails loses only itself. Should the
    batch fail as a whole, it is written again row by row, each on its own."""
    from validator.models import ReceiptRecord

    try:
        with transaction.atomic():
            # Plain inserts (node/sql.py): bulk_create's compiling cost more than the statements.
            sql.insert_many(rows.routings)
            sql.insert_many(rows.events)
            if rows.progress:
                _progress(rows.progress)
            # Known already is fine: a redelivery, or fetched from the miner's pages before.
            sql.insert_many([ReceiptRecord.from_receipt(receipt) for receipt in rows.receipts], ignore_conflicts=True)
            _acknowledge(rows.acks)
            _write_each(rows.writes, savepoint=True)
        return
    except Exception:
        log.warning("a batch of %d ledger rows failed to commit; writing them one by one", len(rows), exc_info=True)
    _write_each(rows.one_by_one(), savepoint=False)


def _write_each(writes: list[Callable[[], None]], *, savepoint: bool) -> None:
    for write in writes:
        try:
            with transaction.atomic() if savepoint else contextlib.nullcontext():
                write()
        except Exception:
            log.exception("could not write a ledger row")


def _progress(updates: list[JobStatusUpdate]) -> None:
    from validator.jobs import progress  # the one writer of the job rows (imports the models)

    progress(updates)


def _acknowledge(statuses: list[StatusKey]) -> None:
    from validator.jobs import acknowledged

    acknowledged(statuses)


def _store_receipt(receipt: Receipt) -> None:
    from validator.models import ReceiptRecord

    ReceiptRecord.objects.keep(receipt)  # known already: a redelivery, or fetched from the miner's pages
