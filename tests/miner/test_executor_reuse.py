"""Executors serve job after job (miner/executors/pool.py ``recycle``, miner/consumers.py).

The pool is real, on the stand-in spawner; executors are played by hand, as in test_consumers.
"""

from __future__ import annotations

import pytest

from miner.executors.pool import ExecutorPool, SlotState
from protocol.messages import (
    Error,
    ExecutorReady,
    JobCancel,
    JobFailed,
    JobFailure,
    JobFinished,
    JobInfraFailed,
    JobInitial,
    JobReserved,
    JobResult,
)
from tests.ws import Peer

from .conftest import Dial, FakeSpawner, settle
from .test_consumers import MANIFEST, accepted, initial, running_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("validators_allowed")]


def finished(job_id: str) -> JobFinished:
    return JobFinished(job_id=job_id, result=JobResult(exit_code=0))


def failed(job_id: str) -> JobFailed:
    return JobFailed(job_id=job_id, failure=JobFailure(reason="nonzero_exit", message="exit 1"))


async def reported(validator: Peer, executor: Peer, message: JobFinished | JobFailed | JobInfraFailed) -> None:
    """The executor reports ``message``; the miner relays it to the validator."""
    await executor.send(message)
    assert await validator.receive(skip=MANIFEST) == message


async def next_job(validator: Peer, executor: Peer) -> JobInitial:
    """A new job the validator offers, which reaches this (reused) executor."""
    job = initial()
    await accepted(validator, job)
    assert await executor.receive() == JobReserved(initial=job)
    return job


async def test_an_executor_that_ended_its_job_gets_the_next_one_on_the_same_connection(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    pool.max_jobs = 3
    validator, executor, first = await running_job(dial_validator, dial_executor, spawner)
    hotkey = pool.jobs[first].hotkey
    await reported(validator, executor, finished(first))
    assert first not in pool.jobs and pool.slots[hotkey].state is SlotState.IDLE

    second = await next_job(validator, executor)
    assert pool.jobs[second.job_id] is pool.slots[hotkey] and pool.slots[hotkey].served == 1

    # The first job is over on this connection: its reports are refused, a cancel reaches nobody.
    await executor.send(ExecutorReady(job_id=first))
    assert await executor.receive() == Error(code="unknown_job", message="not your job", ref=first)
    await validator.send(JobCancel(job_id=first, reason="too late"))
    await executor.expect_nothing()
    await reported(validator, executor, failed(second.job_id))
    assert pool.slots[hotkey].served == 2


async def test_an_executor_that_served_max_jobs_is_not_given_another(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    pool.max_jobs = 2
    validator, executor, first = await running_job(dial_validator, dial_executor, spawner)
    hotkey = pool.jobs[first].hotkey
    await reported(validator, executor, finished(first))
    second = await next_job(validator, executor)
    await reported(validator, executor, finished(second.job_id))
    # Its second job was its last: it still holds that job's slot until it leaves, and serves no more.
    assert pool.slots[hotkey].job_id == second.job_id
    third = initial()
    await accepted(validator, third)
    assert pool.jobs[third.job_id].hotkey != hotkey
    await executor.expect_nothing()
    await executor.disconnect()
    await settle()
    await validator.expect_nothing(skip=MANIFEST)  # leaving after its last job is no failure
    assert hotkey not in pool.slots


async def test_an_executor_whose_job_was_cancelled_is_not_reused(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    pool.max_jobs = 5
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    hotkey = pool.jobs[job_id].hotkey
    await validator.send(JobCancel(job_id=job_id, reason="client cancelled"))
    assert await executor.receive() == JobCancel(job_id=job_id, reason="client cancelled")
    # What it reports afterwards is relayed, but it does not come back to the pool.
    await reported(validator, executor, failed(job_id))
    assert hotkey not in pool.slots
    nxt = initial()
    await accepted(validator, nxt)
    assert pool.jobs[nxt.job_id].hotkey != hotkey
    await executor.expect_nothing()


async def test_an_executor_that_failed_infra_is_not_reused(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    pool.max_jobs = 5
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    hotkey = pool.jobs[job_id].hotkey
    broken = JobInfraFailed(job_id=job_id, failure=JobFailure(reason="internal_error", message="boom"))
    await reported(validator, executor, broken)
    assert pool.slots[hotkey].job_id == job_id  # held until the executor leaves, as before
    nxt = initial()
    await accepted(validator, nxt)
    assert pool.jobs[nxt.job_id].hotkey != hotkey
