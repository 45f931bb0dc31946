"""The jobs this validator took, as it keeps them: the one module that writes ``ValidatorJob`` rows.

Intake (:func:`accept`) checks a ``job.new`` against the client's signature and parses its spec
once, stores the row, and builds the :class:`~validator.driver.ActiveJob` to drive
(:func:`active_job`, the one place a row becomes one, for a new job and a resumed one alike).
The rest records what the connector learns: how an attempt or a job ended, a cancellation,
the facilitator's acknowledgement of a final status, a running job's progress (the ledger's
batched writes). The connector (validator/connector.py) decides when; this module, what the
row then says.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError
from django.utils import timezone

from node import sql
from protocol.errors import SignatureError
from protocol.messages import (
    JobContext,
    JobFailure,
    JobNew,
    JobStatusUpdate,
    StatusKey,
    StoreLinks,
    StreamingEndpoint,
)
from protocol.spec import JobSpec, SpecError, parse_spec, verify_job
from protocol.status import FailureReason, JobStatus
from validator.driver import ActiveJob
from validator.ledger import result_digest
from validator.models import ValidatorJob

__all__ = [
    "TERMINAL",
    "Refused",
    "accept",
    "acknowledged",
    "active_job",
    "cancelled",
    "ended",
    "find",
    "finished",
    "next_attempt",
    "progress",
    "unacknowledged_finals",
    "unfinished",
    "verify",
]

TERMINAL = [status.value for status in JobStatus if status.is_terminal]


@dataclass(frozen=True, slots=True)
class Refused:
    """A ``job.new`` the validator stored as ``failed`` at once (bad signature or spec)."""

    update: JobStatusUpdate


def verify(message: JobNew) -> JobSpec | JobFailure:
    """Re-verify what the facilitator forwarded: the client's signature, then the spec.

    The spec is parsed here, once, at the validator's trust boundary: the driver gets this parse.
    """
    try:
        verify_job(message.client_hotkey, message.job_id, message.spec, message.client_signature)
        return parse_spec(message.spec)
    except SignatureError as exc:
        return JobFailure(reason=FailureReason.BAD_SIGNATURE, message=exc.message, reported_by="validator")
    except SpecError as exc:
        return JobFailure(reason=FailureReason.INVALID_SPEC, message=exc.message, reported_by="validator")


def active_job(
    record: ValidatorJob, spec: JobSpec, *, context: JobContext | None = None, pinned_miner: str | None = None
) -> ActiveJob:
    """The job to drive from its row, for the row's attempt.

    ``spec`` is the row's spec, parsed by the caller (once). ``context`` is the facilitator's,
    as it came with ``job.new``; a resumed job has only the row's links (the column keeps them
    alone). ``pinned_miner``: the facilitator's choice of miner, which is not stored.
    """
    return ActiveJob(
        job_id=record.job_id,
        spec_raw=record.spec,
        spec=spec,
        client_hotkey=record.client_hotkey,
        client_signature=record.client_signature,
        context=context if context is not None else JobContext(links=StoreLinks.model_validate(record.links or {})),
        attempt=record.attempt,
        pinned_miner=pinned_miner,
    )


async def accept(message: JobNew) -> ActiveJob | Refused | None:
    """Verify and store a ``job.new``: the job to drive, or its refusal (stored ``failed``, with
    that as its final status), or ``None`` when the job was taken before (before a restart, say)."""
    checked = verify(message)
    failure = checked if isinstance(checked, JobFailure) else None
    refused = (
        JobStatusUpdate(job_id=message.job_id, status=JobStatus.FAILED, at=time.time(), failure=failure)
        if failure is not None
        else None
    )
    record = ValidatorJob(
        job_id=message.job_id,
        client_hotkey=message.client_hotkey,
        spec=message.spec,
        client_signature=message.client_signature,
        links=message.context.links.model_dump(mode="json"),  # the column keeps the links alone
        status=JobStatus.FAILED if failure else JobStatus.RECEIVED,
        failure=failure.model_dump(mode="json") if failure else None,
        final=refused.model_dump(mode="json") if refused else None,
    )
    try:
        await sync_to_async(sql.insert)(record)  # one a job: a plain insert, not the ORM's compiling
    except IntegrityError:
        return None
    if refused is not None:
        return Refused(refused)
    assert isinstance(checked, JobSpec)
    return active_job(record, checked, context=message.context, pinned_miner=message.miner)


async def find(job_id: str) -> ValidatorJob | None:
    return await ValidatorJob.objects.filter(job_id=job_id).afirst()


async def unfinished() -> list[ValidatorJob]:
    """The jobs a previous run of this validator left unfinished."""
    return await sync_to_async(list)(ValidatorJob.objects.exclude(status__in=TERMINAL))


async def next_attempt(record: ValidatorJob, spec: JobSpec) -> ActiveJob:
    """Resume a job left unfinished as its next attempt (stored first)."""
    await ValidatorJob.objects.filter(job_id=record.job_id).aupdate(attempt=record.attempt + 1)
    record.attempt += 1
    return active_job(record, spec)


async def finished(job: ActiveJob, final: JobStatusUpdate, readiness: StreamingEndpoint | None) -> None:
    """How a driven job ended, as its driver returned it (one a job: a plain UPDATE)."""
    values = {
        "status": final.status.value,
        "attempt": final.attempt,
        "miner_hotkey": final.miner or "",
        "executor_class": job.spec.executor_class,
        "failure": final.failure.model_dump(mode="json") if final.failure else None,
        "outputs_digest": result_digest(final.result) if final.result else "",
        "readiness": readiness.model_dump(mode="json") if readiness else None,
        "final": final.model_dump(mode="json"),
    }
    await sync_to_async(_store_final)(job.job_id, values)


def _store_final(job_id: str, values: dict[str, Any]) -> None:
    # On the database thread: touching ``connection`` on the event loop makes a new connection
    # object for each task's context (asgiref's Local), and the validator's RSS grew with them.
    sql.execute(
        f"UPDATE {sql.table(ValidatorJob)} SET {', '.join(f'{name} = %s' for name in values)} WHERE job_id = %s",
        [*(sql.prep(ValidatorJob, name, value) for name, value in values.items()), job_id],
    )


async def ended(job_id: str, final: JobStatusUpdate) -> None:
    """A job the validator ended itself (its driver crashed, no attempt was left after a restart)."""
    await ValidatorJob.objects.filter(job_id=job_id).aupdate(status=final.status, final=final.model_dump(mode="json"))


async def cancelled(job_id: str) -> None:
    """The facilitator cancelled the job: it decided it, so nothing is left to tell it or resend."""
    await ValidatorJob.objects.filter(job_id=job_id).aupdate(status=JobStatus.CANCELLED, final_acked=True)


def acknowledged(statuses: Iterable[StatusKey]) -> None:
    """The facilitator stored these statuses: the jobs that ended with one need not resend it.

    Synchronous: the ledger writes these in its batches (a lost one only means a final resent
    after a restart, which the facilitator ignores as a duplicate).
    """
    # Only a job's real end: a retried attempt's infra_failed is terminal too, but the job goes on.
    acked = sql.prep(ValidatorJob, "final_acked", True)
    sql.execute_many(
        f"UPDATE {sql.table(ValidatorJob)} SET final_acked = %s WHERE job_id = %s AND attempt = %s AND status = %s",
        [(acked, key.job_id, key.attempt, key.status.value) for key in statuses if key.status.is_terminal],
    )


async def unacknowledged_finals() -> list[JobStatusUpdate]:
    """How every job ended that the facilitator has not acknowledged, oldest first."""
    rows = await sync_to_async(list)(
        ValidatorJob.objects.filter(status__in=TERMINAL, final_acked=False, final__isnull=False)
        .order_by("updated_at")
        .values_list("final", flat=True)
    )
    return [JobStatusUpdate.model_validate(final) for final in rows]


def progress(updates: list[JobStatusUpdate]) -> None:
    """Running jobs' rows follow their statuses (the dashboard shows them); never after their end.

    Synchronous: the ledger's background task writes them in a batch (validator/ledger.py), one
    statement run once per job with the newest of its statuses (and the newest miner named).
    """
    newest: dict[str, tuple[str, int, str]] = {}
    for update in updates:
        miner = update.miner or newest.get(update.job_id, ("", 0, ""))[2]
        newest[update.job_id] = (update.status.value, update.attempt, miner)
    now = sql.prep(ValidatorJob, "updated_at", timezone.now())
    sql.execute_many(
        f"UPDATE {sql.table(ValidatorJob)} SET status = %s, attempt = %s, updated_at = %s,"
        " miner_hotkey = CASE WHEN %s = '' THEN miner_hotkey ELSE %s END"
        f" WHERE job_id = %s AND status NOT IN ({sql.marks(len(TERMINAL))})",
        [
            (status, attempt, now, miner, miner, job_id, *TERMINAL)
            for job_id, (status, attempt, miner) in newest.items()
        ],
    )
