"""A validator's jobs outlive its dropped connection for a grace period: the miner holds them,
keeps what their executors report, and hands them back when the same validator reconnects
(miner/holds.py)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from miner.executors.pool import ExecutorPool
from protocol.messages import (
    ExecutionDone,
    ExecutorReady,
    JobAccepted,
    JobCancel,
    JobFinished,
    JobResult,
    JobsRunning,
    Manifest,
    VolumesReady,
)
from tests.ws import Peer

from .conftest import OTHER_VALIDATOR, VALIDATOR, Dial, FakeSpawner, settle
from .test_consumers import MANIFEST, connected_validator, full, initial, running_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("validators_allowed")]


async def reconnected(dial_validator: Dial, jobs: dict[str, int], keypair=VALIDATOR) -> Peer:
    validator = await dial_validator(keypair)
    assert isinstance(await validator.receive(), Manifest)
    assert await validator.receive() == JobsRunning(jobs=jobs)
    return validator


async def test_a_validator_that_reconnects_gets_its_running_job_back_with_what_it_missed(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await executor.send(ExecutorReady(job_id=job_id))
    assert await validator.receive(skip=MANIFEST) == ExecutorReady(job_id=job_id)
    await validator.disconnect()
    await executor.expect_nothing()  # not cancelled: held
    await executor.send(VolumesReady(job_id=job_id))  # reported while nobody listens
    await settle()

    back = await reconnected(dial_validator, {job_id: 1})
    # Every frame of the attempt, in order: the driver skips those it already had.
    replayed = [await back.receive(skip=MANIFEST) for _ in range(3)]
    assert replayed == [JobAccepted(job_id=job_id), ExecutorReady(job_id=job_id), VolumesReady(job_id=job_id)]
    # From now on it is this connection's job: live reports, job.full and cancels work on it.
    await executor.send(ExecutionDone(job_id=job_id))
    assert await back.receive(skip=MANIFEST) == ExecutionDone(job_id=job_id)
    await back.send(JobCancel(job_id=job_id, reason="enough"))
    assert await executor.receive() == JobCancel(job_id=job_id, reason="enough")
    assert job_id not in pool.jobs


async def test_a_job_that_finished_while_its_validator_was_away_is_replayed_to_the_end(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await validator.disconnect()
    finished = JobFinished(job_id=job_id, result=JobResult(exit_code=0, stdout="done\n"))
    await executor.send(finished)
    await executor.disconnect()  # its executor is gone and the slot with it
    await settle()
    assert job_id not in pool.jobs

    back = await reconnected(dial_validator, {job_id: 1})
    assert [await back.receive(skip=MANIFEST) for _ in range(2)] == [JobAccepted(job_id=job_id), finished]


async def test_held_jobs_go_only_to_the_validator_that_started_them(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await validator.disconnect()
    await settle()
    other = await connected_validator(dial_validator, OTHER_VALIDATOR)  # JobsRunning(jobs={}) for it
    await other.send(JobCancel(job_id=job_id))
    await executor.expect_nothing()
    await reconnected(dial_validator, {job_id: 1})


@override_settings(MINER_RESUME_GRACE_S=0.3)
async def test_a_held_job_is_cancelled_when_its_validator_does_not_come_back_in_time(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await validator.disconnect()
    assert await executor.receive() == JobCancel(job_id=job_id, reason="the validator did not come back")
    assert job_id not in pool.jobs
    await reconnected(dial_validator, {})  # nothing left for it


async def test_a_later_attempt_of_a_held_job_supersedes_it(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    """The validator restarted and tries the job again: the attempt still held here is over."""
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await validator.disconnect()
    await settle()
    back = await reconnected(dial_validator, {job_id: 1})
    second = initial(job_id).model_copy(update={"attempt": 2})
    await back.send(second)
    assert await executor.receive() == JobCancel(job_id=job_id, reason="superseded by attempt 2")
    replayed_then_accepted = [await back.receive(skip=MANIFEST) for _ in range(2)]
    assert replayed_then_accepted == [JobAccepted(job_id=job_id), JobAccepted(job_id=job_id)]
    assert pool.jobs[job_id].initial_frame == second.encode()


async def test_a_cancel_of_another_attempt_leaves_the_job_alone(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await validator.send(JobCancel(job_id=job_id, attempt=2, reason="not that one"))
    await executor.expect_nothing()
    assert job_id in pool.jobs
    await validator.send(JobCancel(job_id=job_id, attempt=1, reason="this one"))
    assert await executor.receive() == JobCancel(job_id=job_id, reason="this one")


async def test_a_job_full_resent_after_a_reconnect_reaches_the_executor_once(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await validator.send(full(job_id))
    assert await executor.receive() == full(job_id)
    await validator.disconnect()
    await settle()
    back = await reconnected(dial_validator, {job_id: 1})
    await back.send(full(job_id))
    await executor.expect_nothing()
