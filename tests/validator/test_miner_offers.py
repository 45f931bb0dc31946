"""A miner connection counts the executors this validator has offered jobs to and the miner has not
reported yet: jobs waiting in line do not all rush the one executor a manifest shows free.

The MinerConnection objects are real; only their websocket is absent (as in test_driver.py).
"""

from __future__ import annotations

import asyncio

from protocol.keys import Keypair
from protocol.messages import ClassCapacity, JobAccepted, JobDeclined, JobInitial, Manifest
from protocol.spec import JobSpec, new_job_id, sign_job
from protocol.status import JobStatus
from validator.driver import ActiveJob, JobDriver
from validator.miners import CapacityWatch, MinerConnection

CLIENT = Keypair.generate()
VALIDATOR = Keypair.generate()


def make_job() -> ActiveJob:
    raw = JobSpec(command=["true"], timing={"reservation": 0.5}).to_wire()
    job_id = new_job_id()
    return ActiveJob(
        job_id=job_id,
        spec_raw=raw,
        spec=JobSpec.model_validate(raw),
        client_hotkey=CLIENT.hotkey,
        client_signature=sign_job(CLIENT, job_id, raw),
    )


async def make_miner(capacity: CapacityWatch, free: int, total: int = 4) -> MinerConnection:
    miner = MinerConnection(Keypair.generate().hotkey, "ws://127.0.0.1:9/ws/validator/", VALIDATOR, capacity)
    miner.client.connected.set()
    await miner.handle_frame(None, Manifest(classes={"cpu.small": ClassCapacity(total=total, free=free)}))  # type: ignore[arg-type]
    return miner


def initials(miner: MinerConnection) -> list[JobInitial]:
    sent = []
    while not miner.client._outbox.empty():
        message = miner.client._outbox.get_nowait()
        if isinstance(message, JobInitial):
            sent.append(message)
    return sent


async def test_an_offer_holds_its_executor_until_the_miner_answers_and_a_manifest_counts_it() -> None:
    miner = await make_miner(CapacityWatch(), free=2)
    first, second = new_job_id(), new_job_id()
    miner.send(JobInitial(job_id=first, attempt=1, executor_class="cpu.small", timing={}))
    assert miner.free("cpu.small") == 1 and miner.reported["cpu.small"].free == 2
    miner.send(JobInitial(job_id=second, attempt=1, executor_class="cpu.small", timing={}))
    assert miner.free("cpu.small") == 0
    # A manifest the miner built before it saw the offers: still counted.
    await miner.handle_frame(None, Manifest(classes={"cpu.small": ClassCapacity(total=4, free=2)}))  # type: ignore[arg-type]
    assert miner.free("cpu.small") == 0
    await miner.handle_frame(None, JobDeclined(job_id=second, reason="busy"))  # type: ignore[arg-type]
    assert miner.free("cpu.small") == 1
    await miner.handle_frame(None, JobAccepted(job_id=first))  # type: ignore[arg-type]
    assert miner.free("cpu.small") == 1, "accepted: counted until a manifest built after the reservation"
    await miner.handle_frame(None, Manifest(classes={"cpu.small": ClassCapacity(total=4, free=1)}))  # type: ignore[arg-type]
    assert miner.free("cpu.small") == 1
    miner.close_inbox(first)
    assert miner.free("cpu.small") == 1


async def test_an_offer_never_answered_gives_its_executor_back_when_the_attempt_ends() -> None:
    miner = await make_miner(CapacityWatch(), free=1)
    job_id = new_job_id()
    miner.open_inbox(job_id, "cpu.small")
    miner.send(JobInitial(job_id=job_id, attempt=1, executor_class="cpu.small", timing={}))
    assert miner.free("cpu.small") == 0
    miner.close_inbox(job_id)  # e.g. the reservation timed out
    assert miner.free("cpu.small") == 1


async def test_queued_jobs_are_offered_one_per_free_executor_not_all_at_once() -> None:
    capacity, reports = CapacityWatch(), []
    miner = await make_miner(capacity, free=0)
    jobs = [make_job() for _ in range(10)]
    drivers = [
        asyncio.create_task(JobDriver(job, lambda: [miner], reports.append, capacity, queue_timeout=5).run())
        for job in jobs
    ]
    await asyncio.sleep(0.1)
    assert initials(miner) == []
    # One executor frees up: every driver wakes, one job is offered.
    await miner.handle_frame(None, Manifest(classes={"cpu.small": ClassCapacity(total=4, free=1)}))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    offered = initials(miner)
    assert len(offered) == 1
    # The miner declines it (say it is busy after all, without proof): the executor is offered again.
    await miner.handle_frame(None, JobDeclined(job_id=offered[0].job_id, reason="unknown_executor_class"))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    assert len(initials(miner)) == 1
    for task in drivers:
        task.cancel()
    await asyncio.gather(*drivers, return_exceptions=True)
    assert not any(update.status is JobStatus.COMPLETED for update in reports)
