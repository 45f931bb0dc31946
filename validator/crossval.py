"""Cross-validation (DESIGN.md §8): re-run a completed job on a trusted miner and compare.

A sample of completed batch jobs (``GRID_CROSSVAL_SAMPLE``), and every job whose spec asks for
``on_trusted_miner``, runs again on a trusted miner (``GRID_TRUSTED_MINERS``) that is not the
one that ran it. The re-run is a check run (``job.initial`` ``crossval``): the executor digests
the outputs and logs instead of uploading them, so the client's objects are untouched. If the
digests differ, the first miner is blacklisted with both results kept as the incident's
evidence. A check run that fails or finds no trusted miner is logged and proves nothing.

A streaming job cannot be re-run this way (only its client can call it): with
``on_trusted_miner`` it runs on a trusted miner in the first place, and its client compares the
replies of another run with it; a differing reply is a malicious-miner report's
``trusted_evidence`` (validator/reports.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable

from protocol.messages import JobContext, JobResult, JobStatusUpdate
from protocol.status import JobStatus
from validator.driver import ActiveJob, JobDriver
from validator.ledger import Ledger, NullLedger, result_digest
from validator.miners import CapacityWatch, MinerConnection

__all__ = ["CrossValidator"]

log = logging.getLogger("grid.validator.crossval")


class _CheckLedger(NullLedger):
    """A check run records nothing of its own, but routes with the validator's reputation."""

    def __init__(self, ledger: NullLedger) -> None:
        super().__init__()
        self.reputation = ledger.reputation


class CrossValidator:
    def __init__(
        self,
        miners: Callable[[], list[MinerConnection]],
        ledger: Ledger,
        trusted: frozenset[str],
        sample: float,
        *,
        capacity: CapacityWatch | None = None,
        queue_timeout: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        self.miners, self.ledger, self.trusted, self.sample = miners, ledger, trusted, sample
        self.capacity = capacity or CapacityWatch()
        self.queue_timeout = queue_timeout
        self.rng = rng or random.Random()
        self.tasks: set[asyncio.Task[bool | None]] = set()

    def __repr__(self) -> str:
        return f"<CrossValidator {len(self.trusted)} trusted, sample {self.sample:g}, {len(self.tasks)} running>"

    def miners_for(self, job: ActiveJob) -> Callable[[], list[MinerConnection]]:
        """The miners a job may run on: a streaming job with ``on_trusted_miner`` runs on a
        trusted one itself (its replies are then what a client compares another run's against,
        as a report's ``trusted_evidence``); any other job, on every miner."""
        if job.spec.streaming and job.spec.on_trusted_miner:
            return lambda: [miner for miner in self.miners() if miner.hotkey in self.trusted]
        return self.miners

    def wanted(self, job: ActiveJob, miner_hotkey: str) -> bool:
        """Should this completed job be checked? (Streaming jobs are compared by their replies instead.)"""
        if job.spec.streaming or not self.trusted or miner_hotkey in self.trusted:
            return False
        return job.spec.on_trusted_miner or self.rng.random() < self.sample

    def start(self, job: ActiveJob, miner_hotkey: str, result: JobResult) -> asyncio.Task[bool | None]:
        task = asyncio.create_task(self.check(job, miner_hotkey, result), name=f"crossval {job.job_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def check(self, job: ActiveJob, miner_hotkey: str, result: JobResult) -> bool | None:
        """``True`` if the trusted run agrees, ``False`` on a mismatch (the miner is blacklisted),
        ``None`` if the check could not be made."""
        rerun = dataclasses.replace(job, context=JobContext(), attempt=1, pinned_miner=None, crossval=True)

        def trusted_miners() -> list[MinerConnection]:
            return [m for m in self.miners() if m.hotkey in self.trusted and m.hotkey != miner_hotkey]

        def ignore(update: JobStatusUpdate) -> None:
            pass

        driver = JobDriver(rerun, trusted_miners, ignore, self.capacity, self.queue_timeout, _CheckLedger(self.ledger))
        final = await driver.run()
        if final.status is not JobStatus.COMPLETED or final.result is None:
            reason = final.failure.reason if final.failure else final.status.value
            log.info("cross-validation of job %s could not run: %s", job.job_id, reason)
            return None
        expected, got = result_digest(final.result), result_digest(result)
        if expected == got:
            log.info("cross-validation of job %s on %s agrees", job.job_id, final.miner and final.miner[:12])
            return True
        evidence = {
            "trusted_miner": final.miner,
            "trusted_digest": expected,
            "trusted_records": [r.model_dump(mode="json") for r in [*final.result.outputs, *final.result.logs]],
            "miner_digest": got,
            "miner_records": [r.model_dump(mode="json") for r in [*result.outputs, *result.logs]],
        }
        self.ledger.blacklist(
            miner_hotkey,
            f"cross-validation of job {job.job_id}: outputs differ from trusted miner {str(final.miner)[:12]}",
            "crossval_mismatch",
            job.job_id,
            evidence=evidence,
        )
        return False
