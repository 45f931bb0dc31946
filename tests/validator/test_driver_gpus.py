"""A GPU job's receipts name the GPUs its miner bound the executor to (validator/driver.py, docs/gpu.md)."""

from __future__ import annotations

import asyncio

import pytest

from protocol.messages import ExecutionDone, ExecutorReady, JobAccepted, JobFinished, JobFull, VolumesReady
from protocol.receipts import ReceiptKind, countersign, verify_receipt
from protocol.status import JobStatus
from validator.driver import JobDriver
from validator.miners import CapacityWatch

from .test_driver import Recorder, answer, make_job, sent
from .test_driver_integrity import RESULT, keyed_miner, receipt_to_sign, receipts_to_sign, registered_ledger, sign_back

pytestmark = pytest.mark.django_db(transaction=True)

GPUS = ["GPU-aaaaaaaa-0000-0000-0000-000000000000"]


async def test_the_gpus_of_job_accepted_are_in_every_receipt_of_the_attempt() -> None:
    capacity, report, ledger = CapacityWatch(), Recorder(), registered_ledger()
    miner, key = await keyed_miner(capacity, ledger)
    job = make_job()
    driver = asyncio.create_task(JobDriver(job, lambda: [miner], report, capacity, ledger=ledger).run())
    await sent(miner)  # job.initial
    await answer(miner, JobAccepted(job_id=job.job_id, gpus=GPUS))
    receipts = await receipts_to_sign(miner)  # started and accepted
    await answer(miner, ExecutorReady(job_id=job.job_id))
    assert isinstance(await sent(miner), JobFull)
    await sign_back(miner, key, *receipts)
    await answer(
        miner,
        VolumesReady(job_id=job.job_id),
        ExecutionDone(job_id=job.job_id),
        JobFinished(job_id=job.job_id, result=RESULT),
    )
    receipts.append(await receipt_to_sign(miner))
    assert (await driver).status is JobStatus.COMPLETED
    assert [r.payload.kind for r in receipts] == [ReceiptKind.STARTED, ReceiptKind.ACCEPTED, ReceiptKind.FINISHED]
    for receipt in receipts:
        assert receipt.payload.gpus == tuple(GPUS)
        verify_receipt(countersign(key, receipt), validator_hotkey=receipt.payload.validator_hotkey)
