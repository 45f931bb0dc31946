"""The job driver's receipts, incidents, busy proofs and routing records (validator/driver.py).

Same setup as tests/validator/test_driver.py (real MinerConnection objects fed by hand), with a
real Ledger: the miners countersign the receipts they are sent with their own keys, and the
rows are read back from the database after a flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

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
    Manifest,
    OutputRecord,
    ReceiptSign,
    ReceiptSigned,
    VolumesReady,
)
from protocol.receipts import Receipt, ReceiptKind, ReceiptPayload, countersign, sign_receipt, verify_receipt
from protocol.status import JobStatus
from validator.driver import ActiveJob, JobDriver
from validator.ledger import Ledger, result_digest
from validator.miners import CapacityWatch, MinerConnection
from validator.models import Incident, JobEvent, ReceiptRecord, RoutingDecision

from .test_driver import VALIDATOR, Recorder, answer, make_job, make_miner, sent, streaming_miner

pytestmark = pytest.mark.django_db(transaction=True)

OTHER_VALIDATOR = Keypair.generate()


def registered_ledger() -> Ledger:
    """A ledger that counts OTHER_VALIDATOR's receipts, as if the registry listed it."""
    ledger = Ledger(VALIDATOR)
    ledger.known_validators = lambda: frozenset({OTHER_VALIDATOR.hotkey})
    return ledger


RESULT = JobResult(
    exit_code=0,
    stdout="ok\n",
    duration_s=1.25,
    outputs=[OutputRecord(path="out/a.txt", sha256="aa" * 32, size=3, ref="k-a")],
    logs=[OutputRecord(path="stdout", sha256="bb" * 32, size=3, ref="k-stdout")],
)


async def keyed_miner(
    capacity: CapacityWatch, ledger: Ledger, *, free: int = 1, total: int = 1
) -> tuple[MinerConnection, Keypair]:
    """A miner whose key the test holds, wired to the ledger as the connector wires it."""
    miner, key = await streaming_miner(capacity)
    if (free, total) != (1, 1):
        await answer(miner, Manifest(classes={"cpu.small": ClassCapacity(total=total, free=free)}))
    miner.on_receipt = ledger.countersigned
    return miner, key


async def receipts_to_sign(miner: MinerConnection) -> list[Receipt]:
    """The receipts of the next frame the validator sends (a ``receipt.sign``)."""
    message = await sent(miner)
    assert isinstance(message, ReceiptSign), message
    return message.receipts


async def receipt_to_sign(miner: MinerConnection) -> Receipt:
    (receipt,) = await receipts_to_sign(miner)
    return receipt


async def sign_back(miner: MinerConnection, key: Keypair, *receipts: Receipt) -> None:
    """The miner countersigns and returns each receipt, as a real miner does."""
    for receipt in receipts:
        await answer(miner, ReceiptSigned(receipt=countersign(key, receipt)))


async def accept(miner: MinerConnection, job: ActiveJob) -> list[Receipt]:
    """Take the offer; returns the started and accepted receipts the validator sends at once."""
    initial = await sent(miner)
    assert isinstance(initial, JobInitial) and initial.job_id == job.job_id
    await answer(miner, JobAccepted(job_id=job.job_id))
    receipts = await receipts_to_sign(miner)
    assert [r.payload.kind for r in receipts] == [ReceiptKind.STARTED, ReceiptKind.ACCEPTED]  # in one frame
    return receipts


async def serve(miner: MinerConnection, key: Keypair, job: ActiveJob, result: JobResult = RESULT) -> list[Receipt]:
    """Run the job to completion on ``miner``, countersigning every receipt; returns them in order."""
    receipts = await accept(miner, job)
    await answer(miner, ExecutorReady(job_id=job.job_id))
    assert isinstance(await sent(miner), JobFull)
    await sign_back(miner, key, *receipts)
    await answer(
        miner,
        VolumesReady(job_id=job.job_id),
        ExecutionDone(job_id=job.job_id),
        JobFinished(job_id=job.job_id, result=result),
    )
    finished = await receipt_to_sign(miner)
    await sign_back(miner, key, finished)
    return [*receipts, finished]


def busy_receipts(miner: Keypair, count: int) -> list[Receipt]:
    """Countersigned ``started`` receipts of other jobs (another validator's), as a busy miner shows them."""
    return [
        countersign(
            miner,
            sign_receipt(
                OTHER_VALIDATOR,
                ReceiptPayload(
                    kind=ReceiptKind.STARTED,
                    job_id=f"busy-{index}",
                    attempt=1,
                    validator_hotkey=OTHER_VALIDATOR.hotkey,
                    miner_hotkey=miner.hotkey,
                    executor_class="cpu.small",
                    at=time.time() - 30,
                ),
            ),
        )
        for index in range(count)
    ]


async def incidents(**filters: str) -> list[Incident]:
    return [row async for row in Incident.objects.filter(**filters)]


async def decisions(job_id: str) -> list[RoutingDecision]:
    return [row async for row in RoutingDecision.objects.filter(job_id=job_id).order_by("at", "id")]


# -- receipts --------------------------------------------------------------------------------------


async def test_a_completed_job_yields_started_accepted_and_finished_receipts_the_miner_countersigns() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    miner, key = await keyed_miner(capacity, ledger)
    job = make_job()
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity, ledger=ledger).run())
    receipts = await serve(miner, key, job)
    final = await driver
    assert final.status is JobStatus.COMPLETED
    assert [r.payload.kind for r in receipts] == [ReceiptKind.STARTED, ReceiptKind.ACCEPTED, ReceiptKind.FINISHED]
    for receipt in receipts:
        payload = receipt.payload
        assert not receipt.complete, "the validator sends its half only"
        assert (payload.job_id, payload.attempt, payload.executor_class) == (job.job_id, 1, "cpu.small")
        assert (payload.validator_hotkey, payload.miner_hotkey) == (VALIDATOR.hotkey, miner.hotkey)
    started, accepted, finished = (r.payload for r in receipts)
    assert started.status is None and accepted.outputs_digest is None
    assert finished.status == "completed"
    assert finished.outputs_digest == result_digest(RESULT)
    assert finished.duration_s == RESULT.duration_s

    await ledger.flush()
    stored = [row async for row in ReceiptRecord.objects.filter(job_id=job.job_id).order_by("kind")]
    assert [(row.kind, row.status, row.miner_hotkey) for row in stored] == [
        ("accepted", "", miner.hotkey),
        ("finished", "completed", miner.hotkey),
        ("started", "", miner.hotkey),
    ]
    for row in stored:
        receipt = Receipt.model_validate(row.receipt)
        verify_receipt(receipt, miner_hotkey=miner.hotkey, validator_hotkey=VALIDATOR.hotkey)
    events = [row.status async for row in JobEvent.objects.filter(job_id=job.job_id)]
    assert events == ["accepted", "executor_ready", "volumes_ready", "execution_done", "completed"]
    [decision] = await decisions(job.job_id)
    assert (decision.attempt, decision.chosen, decision.reason) == (1, miner.hotkey, "only_candidate")


async def test_a_receipt_the_miner_does_not_sign_back_is_not_kept() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    miner, key = await keyed_miner(capacity, ledger)
    job = make_job()
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity, ledger=ledger).run())
    started, accepted = await accept(miner, job)
    await answer(miner, ExecutorReady(job_id=job.job_id))
    await sent(miner)
    await sign_back(miner, key, started)  # only the first; and a forgery of the second
    forged = accepted.model_copy(update={"miner_signature": Keypair.generate().sign("receipt", {"x": 1})})
    await answer(miner, ReceiptSigned(receipt=forged))
    await answer(miner, VolumesReady(job_id=job.job_id), ExecutionDone(job_id=job.job_id))
    await answer(miner, JobFinished(job_id=job.job_id, result=RESULT))
    await receipt_to_sign(miner)
    assert (await driver).status is JobStatus.COMPLETED
    await ledger.flush()
    assert [row.kind async for row in ReceiptRecord.objects.all()] == ["started"]


async def test_a_failed_attempt_gets_a_finished_receipt_saying_failed() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    miner, key = await keyed_miner(capacity, ledger)
    job = make_job(max_attempts=3)
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity, ledger=ledger).run())
    receipts = await accept(miner, job)
    failure = JobFailure(reason="nonzero_exit", message="exit 1", stage="execution", exit_code=1)
    await answer(miner, JobFailed(job_id=job.job_id, failure=failure))
    finished = await receipt_to_sign(miner)
    assert (await driver).status is JobStatus.FAILED
    assert (finished.payload.kind, finished.payload.status) == (ReceiptKind.FINISHED, "failed")
    assert finished.payload.outputs_digest is None
    await sign_back(miner, key, *receipts, finished)
    await ledger.flush()
    [row] = [row async for row in ReceiptRecord.objects.filter(kind="finished")]
    assert row.status == "failed"
    assert await incidents() == [], "the job's own failure is not the miner's fault"


async def test_an_offer_never_accepted_gets_no_receipt_but_counts_against_the_miner() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    miner, _ = await keyed_miner(capacity, ledger)
    job = make_job(max_attempts=1)
    final = await asyncio.wait_for(JobDriver(job, lambda: [miner], report, capacity, ledger=ledger).run(), 3)
    assert final.status is JobStatus.INFRA_FAILED and final.failure.stage == "reservation"
    assert isinstance(await sent(miner), JobInitial)
    assert isinstance(await sent(miner), JobCancel)
    assert miner.client._outbox.empty(), "no receipt for an attempt the miner never accepted"
    await ledger.flush()
    [incident] = await incidents(miner_hotkey=miner.hotkey)
    assert incident.kind == "infra_failure" and incident.job_id == job.job_id


# -- infra failures --------------------------------------------------------------------------------


async def test_a_stage_timeout_is_an_incident_and_the_retry_goes_to_another_miner() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    first, first_key = await keyed_miner(capacity, ledger)
    second, second_key = await keyed_miner(capacity, ledger, free=0)
    job = make_job(max_attempts=2)
    driver = asyncio.create_task(JobDriver(job, lambda: [first, second], report, capacity, ledger=ledger).run())
    receipts = await accept(first, job)  # … and never reports ready
    await answer(second, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1)}))
    assert isinstance(await sent(first), JobCancel)
    finished = await receipt_to_sign(first)
    assert (finished.payload.status, finished.payload.attempt) == ("infra_failed", 1)
    await sign_back(first, first_key, *receipts, finished)
    retried = await serve(second, second_key, job)
    final = await driver
    assert final.status is JobStatus.COMPLETED and final.miner == second.hotkey and final.attempt == 2
    assert {r.payload.attempt for r in retried} == {2}
    assert ledger.reputation.recent_incidents(first.hotkey) == 1
    assert ledger.reputation.recent_incidents(second.hotkey) == 0

    await ledger.flush()
    [incident] = await incidents()
    assert (incident.kind, incident.miner_hotkey, incident.job_id) == ("infra_failure", first.hotkey, job.job_id)
    assert "stage_timeout" in incident.message and "executor_start" in incident.message
    one, two = await decisions(job.job_id)
    assert (one.attempt, one.chosen) == (1, first.hotkey)
    assert (two.attempt, two.chosen) == (2, second.hotkey)
    assert {"hotkey": first.hotkey, "free": 1, "weight": 0.0, "skipped": "tried"} in two.candidates
    rows = [(row.attempt, row.kind, row.status) async for row in ReceiptRecord.objects.filter(kind="finished")]
    assert sorted(rows) == [(1, "finished", "infra_failed"), (2, "finished", "completed")]


async def test_a_lost_miner_is_an_incident() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    miner, _ = await keyed_miner(capacity, ledger)
    job = make_job(max_attempts=1)
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity, ledger=ledger).run())
    await accept(miner, job)
    await miner._lost()
    await miner.handle_frame(None, JobsRunning(jobs={}))  # type: ignore[arg-type]  # back, without the job
    assert (await driver).failure.reason == "miner_disconnected"
    await ledger.flush()
    [incident] = await incidents(miner_hotkey=miner.hotkey)
    assert incident.kind == "infra_failure" and "miner_disconnected" in incident.message


async def test_a_blacklisted_miner_is_not_offered_the_job() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    banned, _ = await keyed_miner(capacity, ledger)
    other, other_key = await keyed_miner(capacity, ledger)
    ledger.blacklist(banned.hotkey, "by hand", "malicious_report")
    job = make_job()
    driver = asyncio.create_task(JobDriver(job, lambda: [banned, other], report, capacity, ledger=ledger).run())
    await serve(other, other_key, job)
    assert (await driver).miner == other.hotkey
    assert banned.client._outbox.empty()
    await ledger.flush()
    [decision] = await decisions(job.job_id)
    assert {"hotkey": banned.hotkey, "free": 1, "weight": 0.0, "skipped": "blacklisted"} in decision.candidates


async def test_a_rejected_job_records_why_no_miner_was_chosen() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    miner = await make_miner(capacity, cls="gpu.24gb")
    job = make_job()
    final = await asyncio.wait_for(JobDriver(job, lambda: [miner], report, capacity, ledger=ledger).run(), 2)
    assert final.status is JobStatus.REJECTED
    await ledger.flush()
    [decision] = await decisions(job.job_id)
    assert (decision.chosen, decision.reason) == ("", "no_candidate")
    assert decision.skipped == {"class_not_offered": 1, "eligible": 0}
    assert [row.status async for row in JobEvent.objects.filter(job_id=job.job_id)] == ["rejected"]


# -- busy declines ---------------------------------------------------------------------------------


async def test_a_busy_decline_without_receipts_is_an_incident_and_the_job_goes_elsewhere() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    liar, _ = await keyed_miner(capacity, ledger)
    honest, honest_key = await keyed_miner(capacity, ledger, free=0)
    job = make_job()
    driver = asyncio.create_task(JobDriver(job, lambda: [liar, honest], report, capacity, ledger=ledger).run())
    assert isinstance(await sent(liar), JobInitial)
    await answer(liar, JobDeclined(job_id=job.job_id, reason="busy", message="all busy"))
    await answer(honest, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1)}))
    await serve(honest, honest_key, job)
    final = await driver
    assert final.status is JobStatus.COMPLETED and final.miner == honest.hotkey and final.attempt == 1
    assert liar.client._outbox.empty(), "a declined offer gets no receipt and is not made again"
    assert ledger.reputation.recent_incidents(liar.hotkey) == 1
    await ledger.flush()
    [incident] = await incidents()
    assert (incident.kind, incident.miner_hotkey) == ("busy_unproven", liar.hotkey)
    assert incident.message == "declined as busy showing 0 valid receipt(s) for 1 cpu.small executor(s)"
    assert [d.chosen for d in await decisions(job.job_id)] == [liar.hotkey, honest.hotkey]


async def test_a_busy_decline_with_too_few_receipts_is_an_incident() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    miner, key = await keyed_miner(capacity, ledger, free=1, total=2)
    job = make_job()
    driver = asyncio.create_task(
        JobDriver(job, lambda: [miner], report, capacity, queue_timeout=0.3, ledger=ledger).run()
    )
    await sent(miner)
    await answer(miner, JobDeclined(job_id=job.job_id, reason="busy", receipts=busy_receipts(key, 1)))
    final = await driver
    assert final.status is JobStatus.REJECTED
    await ledger.flush()
    [incident] = await incidents(miner_hotkey=miner.hotkey)
    assert incident.kind == "busy_unproven" and "1 valid receipt(s) for 2 cpu.small" in incident.message


async def test_a_busy_decline_proven_for_every_executor_makes_the_job_wait_without_an_incident() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    miner, key = await keyed_miner(capacity, ledger, free=1, total=2)
    job = make_job()
    driver = asyncio.create_task(
        JobDriver(job, lambda: [miner], report, capacity, queue_timeout=5, ledger=ledger).run()
    )
    assert isinstance(await sent(miner), JobInitial)
    await answer(
        miner,
        JobDeclined(job_id=job.job_id, reason="busy", receipts=busy_receipts(key, 2)),
        Manifest(classes={"cpu.small": ClassCapacity(total=2, free=0)}),
    )
    await asyncio.sleep(0.1)
    assert miner.client._outbox.empty(), "the job waits in line for the miner"
    assert not driver.done()
    await answer(miner, Manifest(classes={"cpu.small": ClassCapacity(total=2, free=1)}))
    await serve(miner, key, job)
    final = await driver
    assert final.status is JobStatus.COMPLETED and final.miner == miner.hotkey and final.attempt == 1
    assert ledger.reputation.recent_incidents(miner.hotkey) == 0
    await ledger.flush()
    assert await incidents() == []
    assert [(d.attempt, d.chosen) for d in await decisions(job.job_id)] == [(1, miner.hotkey), (1, miner.hotkey)]


async def test_a_miner_that_keeps_declining_as_busy_cannot_hold_the_job_past_the_queue_timeout() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    miner, key = await keyed_miner(capacity, ledger)  # its manifest keeps saying one executor is free
    proof = busy_receipts(key, 1)
    job = make_job()
    driver = asyncio.create_task(
        JobDriver(job, lambda: [miner], report, capacity, queue_timeout=0.2, ledger=ledger).run()
    )
    offers = 0
    deadline = asyncio.get_running_loop().time() + 0.6
    try:
        while not driver.done() and asyncio.get_running_loop().time() < deadline:
            try:
                message = await sent(miner, timeout=0.05)
            except TimeoutError:
                continue
            if isinstance(message, JobInitial):
                offers += 1
                await answer(miner, JobDeclined(job_id=job.job_id, reason="busy", receipts=proof))
        assert driver.done(), f"still driving after {offers} offers in 0.6s (queue timeout 0.2s)"
        assert driver.result().status is JobStatus.REJECTED
    finally:
        driver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await driver
