"""The validator's job driver against miner connections fed by hand (no sockets).

The MinerConnection objects are real; only their websocket is absent: what the driver sends
lands in the connection's outbox, and the miner's answers go in through its message handler.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import validator.driver
from protocol.classes import ClassSpec
from protocol.keys import Keypair
from protocol.messages import (
    ClassCapacity,
    ExecutionDone,
    ExecutorReady,
    JobAccepted,
    JobCancel,
    JobDeclined,
    JobFailed,
    JobFailure,
    JobFinished,
    JobFull,
    JobInitial,
    JobResult,
    JobsRunning,
    JobStatusUpdate,
    Manifest,
    Message,
    StreamingEndpoint,
    StreamingReady,
    VolumesReady,
)
from protocol.spec import JobSpec, new_job_id, sign_job
from protocol.status import JobStatus
from protocol.streaming import Readiness, sign_readiness
from validator.driver import ActiveJob, JobDriver
from validator.miners import CapacityWatch, MinerConnection

CLIENT = Keypair.generate()
VALIDATOR = Keypair.generate()


def make_job(timing: dict[str, float] | None = None, **spec: Any) -> ActiveJob:
    timing = timing or {"reservation": 0.5, "executor_start": 0.5}
    raw = JobSpec(command=["true"], timing=timing, **spec).to_wire()
    job_id = new_job_id()
    return ActiveJob(
        job_id=job_id,
        spec_raw=raw,
        spec=JobSpec.model_validate(raw),
        client_hotkey=CLIENT.hotkey,
        client_signature=sign_job(CLIENT, job_id, raw),
    )


async def make_miner(capacity: CapacityWatch, free: int = 1, total: int = 1, cls: str = "cpu.small") -> MinerConnection:
    miner = MinerConnection(Keypair.generate().hotkey, "ws://127.0.0.1:9/ws/validator/", VALIDATOR, capacity)
    miner.client.connected.set()
    await miner.handle_frame(None, Manifest(classes={cls: ClassCapacity(total=total, free=free)}))  # type: ignore[arg-type]
    return miner


async def sent(miner: MinerConnection, timeout: float = 2.0) -> Message:
    return await asyncio.wait_for(miner.client._outbox.get(), timeout)


async def answer(miner: MinerConnection, *messages: Message) -> None:
    for message in messages:
        await miner.handle_frame(None, message)  # type: ignore[arg-type]


async def run_happy_path(miner: MinerConnection, job: ActiveJob) -> None:
    initial = await sent(miner)
    assert isinstance(initial, JobInitial) and initial.job_id == job.job_id
    await answer(miner, JobAccepted(job_id=job.job_id), ExecutorReady(job_id=job.job_id))
    full = await sent(miner)
    assert isinstance(full, JobFull)
    assert full.spec == job.spec_raw and full.client_signature == job.client_signature
    result = JobResult(exit_code=0, stdout="ok\n")
    await answer(
        miner,
        VolumesReady(job_id=job.job_id),
        ExecutionDone(job_id=job.job_id),
        JobFinished(job_id=job.job_id, result=result),
    )


class Recorder:
    def __init__(self) -> None:
        self.updates: list[JobStatusUpdate] = []

    def __call__(self, update: JobStatusUpdate) -> None:
        self.updates.append(update)

    @property
    def statuses(self) -> list[str]:
        return [u.status.value for u in self.updates]


async def test_a_job_passes_every_stage_and_the_spec_reaches_the_miner_unchanged() -> None:
    capacity, report = CapacityWatch(), Recorder()
    miner = await make_miner(capacity)
    job = make_job()
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity).run())
    await run_happy_path(miner, job)
    final = await driver
    assert final.status is JobStatus.COMPLETED and final.result.stdout == "ok\n"
    assert final.miner == miner.hotkey
    assert report.statuses == ["accepted", "executor_ready", "volumes_ready", "execution_done", "completed"]


async def test_a_job_waits_in_line_while_every_executor_is_busy() -> None:
    capacity, report = CapacityWatch(), Recorder()
    miner = await make_miner(capacity, free=0)
    job = make_job()
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity, queue_timeout=5).run())
    await asyncio.sleep(0.2)
    assert miner.client._outbox.empty(), "nothing may be sent while the class is full"
    await answer(miner, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1)}))
    await run_happy_path(miner, job)
    assert (await driver).status is JobStatus.COMPLETED


async def test_a_busy_grid_rejects_the_job_after_the_queue_timeout() -> None:
    capacity, report = CapacityWatch(), Recorder()
    miner = await make_miner(capacity, free=0)
    final = await JobDriver(make_job(), lambda: [miner], report, capacity, queue_timeout=0.2).run()
    assert final.status is JobStatus.REJECTED
    assert final.failure.reason == "busy" and final.failure.stage == "reservation"


async def test_no_miner_offering_the_class_rejects_at_once() -> None:
    capacity, report = CapacityWatch(), Recorder()
    miner = await make_miner(capacity, cls="gpu.24gb")
    final = await asyncio.wait_for(JobDriver(make_job(), lambda: [miner], report, capacity).run(), 2)
    assert final.status is JobStatus.REJECTED
    assert final.failure.reason == "no_miner"


async def test_a_busy_decline_waits_for_capacity_instead_of_failing() -> None:
    capacity, report = CapacityWatch(), Recorder()
    miner = await make_miner(capacity)
    job = make_job()
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity, queue_timeout=5).run())
    assert isinstance(await sent(miner), JobInitial)
    await answer(
        miner,
        JobDeclined(job_id=job.job_id, reason="busy"),
        Manifest(classes={"cpu.small": ClassCapacity(total=1, free=0)}),
    )
    await asyncio.sleep(0.1)
    await answer(miner, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1)}))
    await run_happy_path(miner, job)
    assert (await driver).status is JobStatus.COMPLETED


async def test_a_stage_timeout_cancels_on_the_miner_and_retries_on_another() -> None:
    capacity, report = CapacityWatch(), Recorder()
    first, second = await make_miner(capacity), await make_miner(capacity, free=0)
    job = make_job(max_attempts=2)
    driver = asyncio.create_task(JobDriver(job, lambda: [first, second], report, capacity).run())
    assert isinstance(await sent(first), JobInitial)  # the only one with a free executor
    await answer(second, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1)}))
    await answer(first, JobAccepted(job_id=job.job_id))  # … and never reports ready
    cancel = await sent(first)
    assert isinstance(cancel, JobCancel) and cancel.job_id == job.job_id
    await run_happy_path(second, job)
    final = await driver
    assert final.status is JobStatus.COMPLETED and final.attempt == 2 and final.miner == second.hotkey
    retried = [u for u in report.updates if u.status is JobStatus.INFRA_FAILED]
    assert len(retried) == 1 and retried[0].detail == {"retrying": True}
    assert retried[0].failure.reason == "stage_timeout" and retried[0].failure.stage == "executor_start"


async def test_the_jobs_own_failure_is_final_and_not_retried() -> None:
    capacity, report = CapacityWatch(), Recorder()
    first, second = await make_miner(capacity), await make_miner(capacity, free=0)
    job = make_job(max_attempts=3)
    driver = asyncio.create_task(JobDriver(job, lambda: [first, second], report, capacity).run())
    await sent(first)
    await answer(second, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1)}))
    failure = JobFailure(reason="nonzero_exit", message="exit 1", stage="execution", exit_code=1)
    await answer(first, JobAccepted(job_id=job.job_id), JobFailed(job_id=job.job_id, failure=failure))
    final = await driver
    assert final.status is JobStatus.FAILED and final.failure.reason == "nonzero_exit"
    assert second.client._outbox.empty()


async def test_a_lost_miner_without_another_ends_infra_failed() -> None:
    capacity, report = CapacityWatch(), Recorder()
    miner = await make_miner(capacity)
    job = make_job(max_attempts=2)
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity).run())
    await sent(miner)
    await answer(miner, JobAccepted(job_id=job.job_id))
    await miner._lost()
    await answer(miner, JobsRunning(jobs={}))  # back, without the job (it restarted)
    final = await driver
    assert final.status is JobStatus.INFRA_FAILED
    assert final.failure.reason == "miner_disconnected" and final.failure.stage == "executor_start"
    assert "retrying" not in final.detail


async def test_a_lost_miner_is_retried_on_one_that_is_reconnecting() -> None:
    """The only other miner is down (restarting, say) when the job's miner is lost: the retry
    waits for it to come back instead of ending the job."""
    capacity, report = CapacityWatch(), Recorder()
    first, second = await make_miner(capacity), await make_miner(capacity)
    second.client.connected.clear()  # down: not connected, no manifest
    await second._lost()
    job = make_job(max_attempts=2)
    driver = asyncio.create_task(JobDriver(job, lambda: [first, second], report, capacity).run())
    await sent(first)
    await answer(first, JobAccepted(job_id=job.job_id))
    await first._lost()
    await answer(first, JobsRunning(jobs={}))
    await asyncio.sleep(0.1)
    assert not driver.done()  # waiting for the second miner
    second.client.connected.set()
    await answer(second, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1)}))
    await run_happy_path(second, job)
    final = await driver
    assert (final.status, final.attempt, final.miner) == (JobStatus.COMPLETED, 2, second.hotkey)
    (retried,) = [u for u in report.updates if u.status is JobStatus.INFRA_FAILED]
    assert (retried.failure.reason, retried.detail) == ("miner_disconnected", {"retrying": True})


async def test_a_miner_that_reconnects_still_running_the_job_carries_on_with_the_same_attempt() -> None:
    """The connection drops after the executor is ready; the miner held the job, and on the
    reconnect announces it and replays its frames: the driver skips those it had."""
    capacity, report = CapacityWatch(), Recorder()
    miner = await make_miner(capacity)
    job = make_job(timing={"reservation": 5, "executor_start": 5}, max_attempts=2)
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity).run())
    await sent(miner)
    await answer(miner, JobAccepted(job_id=job.job_id), ExecutorReady(job_id=job.job_id))
    assert isinstance(await sent(miner), JobFull)
    await miner._lost()
    await asyncio.sleep(0.1)
    assert not driver.done()
    await answer(miner, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=0)}))
    await answer(miner, JobsRunning(jobs={job.job_id: 1}))
    replayed = [JobAccepted(job_id=job.job_id), ExecutorReady(job_id=job.job_id), VolumesReady(job_id=job.job_id)]
    await answer(miner, *replayed, ExecutionDone(job_id=job.job_id))
    await answer(miner, JobFinished(job_id=job.job_id, result=JobResult(exit_code=0, stdout="ok\n")))
    final = await driver
    assert (final.status, final.attempt, final.miner) == (JobStatus.COMPLETED, 1, miner.hotkey)
    assert report.statuses == ["accepted", "executor_ready", "volumes_ready", "execution_done", "completed"]
    assert miner.client._outbox.empty(), "nothing cancelled"


async def test_a_miner_that_does_not_come_back_within_the_grace_ends_the_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(validator.driver, "MINER_GRACE_S", 0.2)
    capacity, report = CapacityWatch(), Recorder()
    miner = await make_miner(capacity)
    job = make_job(timing={"reservation": 5, "executor_start": 5})
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity).run())
    await sent(miner)
    await answer(miner, JobAccepted(job_id=job.job_id))
    await miner._lost()
    final = await asyncio.wait_for(driver, 3)
    assert (final.status, final.failure.reason) == (JobStatus.INFRA_FAILED, "miner_disconnected")
    assert "did not come back within 0.2s" in final.failure.message


async def test_jobs_a_reconnected_miner_runs_that_this_validator_no_longer_drives_are_cancelled() -> None:
    """After a validator restart the miner still holds its old attempts: each is cancelled, that
    attempt only (a later attempt of the same job may be under way there)."""
    capacity = CapacityWatch()
    miner = await make_miner(capacity)
    miner.open_inbox("job-now", "cpu.small", attempt=2)
    await answer(miner, JobsRunning(jobs={"job-old": 1, "job-now": 1}))
    cancels = [await sent(miner), await sent(miner)]
    assert {(c.job_id, c.attempt) for c in cancels if isinstance(c, JobCancel)} == {("job-old", 1), ("job-now", 1)}
    assert miner.client._outbox.empty()


async def test_cancelling_the_driver_tells_the_miner() -> None:
    capacity, report = CapacityWatch(), Recorder()
    miner = await make_miner(capacity)
    job = make_job()
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity).run())
    await sent(miner)
    await answer(miner, JobAccepted(job_id=job.job_id))
    await asyncio.sleep(0.05)
    driver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await driver
    cancel = await sent(miner)
    assert isinstance(cancel, JobCancel) and cancel.job_id == job.job_id
    assert job.job_id not in miner.inboxes


async def test_a_job_goes_only_to_a_miner_whose_class_is_big_enough() -> None:
    capacity, report = CapacityWatch(), Recorder()
    small = await make_miner(capacity)
    roomy = await make_miner(capacity)
    await answer(
        small, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1, spec=ClassSpec(cpu=1, memory_mb=256))})
    )
    await answer(
        roomy, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1, spec=ClassSpec(cpu=2, memory_mb=4096))})
    )
    job = make_job(limits={"cpu": 2, "memory_mb": 1024})
    driver = asyncio.create_task(JobDriver(job, lambda: [small, roomy], report, capacity).run())
    await run_happy_path(roomy, job)
    assert (await driver).status is JobStatus.COMPLETED
    assert small.client._outbox.empty(), "the too-small miner was never asked"


async def test_a_job_bigger_than_every_executor_of_its_class_is_rejected_saying_why() -> None:
    capacity, report = CapacityWatch(), Recorder()
    miner = await make_miner(capacity)
    await answer(
        miner, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1, spec=ClassSpec(cpu=1, memory_mb=256))})
    )
    final = await JobDriver(
        make_job(limits={"memory_mb": 1024}), lambda: [miner], report, capacity, queue_timeout=5
    ).run()
    assert final.status is JobStatus.REJECTED
    assert final.failure.reason == "limits_exceed_class"
    assert "1024 MB > 256 MB" in final.failure.message
    assert miner.client._outbox.empty()


# -- streaming jobs --------------------------------------------------------------------------------

STREAM_KEY = Keypair.generate()


def signed_ready(miner: MinerConnection, job: ActiveJob, signer: Keypair) -> StreamingReady:
    readiness = Readiness(
        job_id=job.job_id, address="127.0.0.1", port=40000, job_public_key="ab" * 32, cert_fingerprint="cd" * 32
    )
    endpoint = StreamingEndpoint(
        readiness=readiness,
        cert_pem="PEM",
        miner_hotkey=miner.hotkey,
        miner_signature=sign_readiness(signer, readiness),
    )
    return StreamingReady(job_id=job.job_id, endpoint=endpoint)


async def streaming_miner(capacity: CapacityWatch) -> tuple[MinerConnection, Keypair]:
    keypair = Keypair.generate()
    miner = MinerConnection(keypair.hotkey, "ws://127.0.0.1:9/ws/validator/", VALIDATOR, capacity)
    miner.client.connected.set()
    await miner.handle_frame(None, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1)}))  # type: ignore[arg-type]
    return miner, keypair


async def test_a_streaming_job_reports_the_miners_signed_readiness_to_the_client() -> None:
    capacity, report = CapacityWatch(), Recorder()
    miner, miner_key = await streaming_miner(capacity)
    job = make_job(streaming=True, streaming_public_key=STREAM_KEY.hotkey)
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity).run())
    initial = await sent(miner)
    assert isinstance(initial, JobInitial) and initial.streaming is True
    await answer(miner, JobAccepted(job_id=job.job_id), ExecutorReady(job_id=job.job_id))
    await sent(miner)  # job.full
    ready = signed_ready(miner, job, miner_key)
    await answer(miner, VolumesReady(job_id=job.job_id), ready)
    await answer(miner, ExecutionDone(job_id=job.job_id), JobFinished(job_id=job.job_id, result=JobResult(exit_code=0)))
    final = await driver
    assert final.status is JobStatus.COMPLETED
    assert report.statuses == [
        "accepted",
        "executor_ready",
        "volumes_ready",
        "streaming_ready",
        "execution_done",
        "completed",
    ]
    streaming = report.updates[3]
    assert streaming.streaming == ready.endpoint


async def test_a_readiness_not_signed_by_the_jobs_miner_fails_the_attempt_before_any_client_sees_it() -> None:
    capacity, report = CapacityWatch(), Recorder()
    miner, _ = await streaming_miner(capacity)
    job = make_job(streaming=True, streaming_public_key=STREAM_KEY.hotkey, max_attempts=1)
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity).run())
    await sent(miner)
    await answer(miner, JobAccepted(job_id=job.job_id), ExecutorReady(job_id=job.job_id))
    await sent(miner)
    await answer(miner, VolumesReady(job_id=job.job_id), signed_ready(miner, job, Keypair.generate()))
    final = await driver
    assert final.status is JobStatus.INFRA_FAILED
    assert final.failure.stage == "streaming_start" and "readiness refused" in final.failure.message
    assert "streaming_ready" not in report.statuses


async def test_a_job_no_miner_has_a_port_for_is_rejected_saying_so() -> None:
    capacity, report = CapacityWatch(), Recorder()
    miner, _ = await streaming_miner(capacity)
    job = make_job(streaming=True, streaming_public_key=STREAM_KEY.hotkey)
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity, queue_timeout=0.5).run())
    await sent(miner)
    await answer(miner, JobDeclined(job_id=job.job_id, reason="no_streaming_port", message="every port is taken"))
    final = await driver
    assert final.status is JobStatus.REJECTED
    assert final.failure.reason == "no_streaming_port" and "every port is taken" in final.failure.message


async def test_a_job_pinned_by_its_spec_goes_only_to_that_miner() -> None:
    capacity, report = CapacityWatch(), Recorder()
    other, pinned = await make_miner(capacity, free=4, total=4), await make_miner(capacity)
    job = make_job(miner=pinned.hotkey)
    driver = asyncio.create_task(JobDriver(job, lambda: [other, pinned], report, capacity).run())
    await run_happy_path(pinned, job)
    final = await driver
    assert final.status is JobStatus.COMPLETED and final.miner == pinned.hotkey
    assert other.client._outbox.empty()
