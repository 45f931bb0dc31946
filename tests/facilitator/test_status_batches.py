"""Statuses applied in batches (facilitator/jobs.py ``apply_statuses``): the same outcome as one by one."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from facilitator import jobs
from facilitator.models import Job, JobEvent
from protocol.messages import JobFailure, JobResult, JobStatusUpdate

from .conftest import OTHER_VALIDATOR, VALIDATOR, create_job

pytestmark = pytest.mark.django_db

MINER = "m" * 64


def assigned(validator: str = VALIDATOR.hotkey) -> Job:
    job = create_job()
    Job.objects.filter(id=job.id).update(validator_hotkey=validator)
    return Job.objects.get(id=job.id)


def status(job: Job, value: str, attempt: int = 1, **fields: Any) -> JobStatusUpdate:
    return JobStatusUpdate(job_id=str(job.id), status=value, attempt=attempt, at=time.time(), **fields)


def lifecycle(job: Job) -> list[JobStatusUpdate]:
    """A job retried once and completed, with a redelivered status in the middle and one after its end."""
    retrying = status(
        job, "infra_failed", retrying=True, failure=JobFailure(reason="miner_disconnected", message="gone")
    )
    return [
        status(job, "received"),
        status(job, "accepted", miner=MINER),
        status(job, "accepted", miner=MINER),  # redelivered
        retrying,
        status(job, "accepted", attempt=2, miner=MINER),
        status(job, "execution_done", attempt=2),
        status(job, "completed", attempt=2, result=JobResult(exit_code=0, stdout="ok\n")),
        status(job, "failed", attempt=2, failure=JobFailure(reason="nonzero_exit", message="late")),  # after its end
    ]


def outcome(job: Job) -> tuple[Any, ...]:
    job.refresh_from_db()
    history = list(JobEvent.objects.filter(job=job).values_list("attempt", "status"))
    return job.status, job.attempt, job.miner_hotkey, job.result, job.failure, history


def test_a_batch_ends_where_the_same_updates_one_by_one_end() -> None:
    together, alone = assigned(), assigned()
    pushed = jobs.apply_statuses(VALIDATOR.hotkey, lifecycle(together))
    one_by_one = [u for u in lifecycle(alone) if jobs.apply_status(VALIDATOR.hotkey, u)]
    assert [(u.attempt, u.status) for u in pushed] == [(u.attempt, u.status) for u in one_by_one]
    assert len(pushed) == 6  # the redelivered accepted and the status after the end are not pushed
    assert outcome(together) == outcome(alone)
    assert outcome(together)[:3] == ("completed", 2, MINER)


def test_a_batch_over_many_jobs_costs_a_few_statements_not_a_few_per_status() -> None:
    many = [assigned() for _ in range(10)]
    batch = [u for job in many for u in lifecycle(job)]
    with CaptureQueriesContext(connection) as queries:
        pushed = jobs.apply_statuses(VALIDATOR.hotkey, batch)
    assert len(pushed) == 60
    # Mark them delivered, read the jobs, read their events, insert the events, one UPDATE per
    # job that moved.
    assert len(queries) <= 4 + 10 + 2, [q["sql"][:80] for q in queries]
    # A status from its validator says the job arrived: no redelivery of its job.new.
    assert Job.objects.filter(id__in=[job.id for job in many], delivered_at__isnull=False).count() == 10


def test_another_validators_job_in_a_batch_is_left_alone() -> None:
    mine, theirs = assigned(), assigned(OTHER_VALIDATOR.hotkey)
    pushed = jobs.apply_statuses(VALIDATOR.hotkey, [status(theirs, "received"), status(mine, "received")])
    assert [u.job_id for u in pushed] == [str(mine.id)]
    assert outcome(theirs)[0] == "sent" and outcome(theirs)[-1] == [(1, "sent")]
    assert theirs.delivered_at is None and Job.objects.get(id=mine.id).delivered_at is not None


def test_a_batch_that_fails_as_a_whole_is_applied_update_by_update() -> None:
    job = assigned()
    bad = status(job, "received").model_copy(update={"job_id": "not-a-uuid"})
    pushed = jobs.apply_statuses(VALIDATOR.hotkey, [bad, status(job, "received"), status(job, "accepted", miner=MINER)])
    assert [u.status for u in pushed] == ["received", "accepted"]
    assert outcome(job)[0] == "accepted"
