"""Receipts on the miner's validator endpoint: ``receipt.sign`` and busy declines (miner/consumers.py).

Validators are driven through the real handshake, as in test_consumers.py, whose helpers these reuse.
"""

from __future__ import annotations

import pytest

from miner.executors.pool import ExecutorPool
from miner.models import MinerReceipt
from node.identity import own_keypair
from protocol.keys import Keypair
from protocol.messages import Error, JobCancel, JobDeclined, JobFinished, JobResult, ReceiptSign, ReceiptSigned
from protocol.receipts import RECEIPT_PURPOSE, Receipt, ReceiptKind, verify_receipt
from protocol.spec import new_job_id
from tests.ws import Peer

from .conftest import OTHER_VALIDATOR, STRANGER, VALIDATOR, Dial, FakeSpawner, settle
from .receipt_helpers import make_receipt
from .test_consumers import MANIFEST, accepted, connected_validator, initial, running_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("validators_allowed")]


def to_sign(kind: ReceiptKind | str = ReceiptKind.STARTED, validator: Keypair = VALIDATOR, **fields: object) -> Receipt:
    """A receipt as a validator sends it: its own signature only."""
    return make_receipt(kind, validator=validator, countersigned=False, **fields)


async def signed(validator: Peer, receipt: Receipt) -> Receipt:
    """Send ``receipt`` for countersigning; the receipt the miner sent back, checked."""
    await validator.send(ReceiptSign(receipt=receipt))
    answer = await validator.receive(skip=MANIFEST)
    assert isinstance(answer, ReceiptSigned), answer
    assert answer.receipt.payload == receipt.payload
    assert answer.receipt.validator_signature == receipt.validator_signature
    verify_receipt(answer.receipt, miner_hotkey=own_keypair().hotkey, validator_hotkey=receipt.payload.validator_hotkey)
    return answer.receipt


async def refused(validator: Peer, receipt: Receipt, code: str, message: str) -> None:
    """``receipt`` is refused with an ``error`` frame, and nothing of it is kept."""
    before = [row async for row in MinerReceipt.objects.values_list("id", "receipt")]
    await validator.send(ReceiptSign(receipt=receipt))
    assert await validator.receive(skip=MANIFEST) == Error(code=code, message=message, ref=receipt.payload.job_id)
    assert [row async for row in MinerReceipt.objects.values_list("id", "receipt")] == before


async def kept() -> list[Receipt]:
    return [Receipt.model_validate(receipt) async for receipt in MinerReceipt.objects.values_list("receipt", flat=True)]


# -- receipt.sign ----------------------------------------------------------------------------------


async def test_a_started_receipt_is_countersigned_kept_and_sent_back(dial_validator: Dial) -> None:
    validator = await connected_validator(dial_validator)
    receipt = await signed(validator, to_sign())
    assert await kept() == [receipt]


async def test_the_receipts_of_a_job_the_miner_holds_and_then_finished_are_countersigned(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    started = await signed(validator, to_sign("started", job_id=job_id))
    accepted_ = await signed(validator, to_sign("accepted", job_id=job_id))
    await executor.send(JobFinished(job_id=job_id, result=JobResult(exit_code=0)))
    assert await validator.receive(skip=MANIFEST) == JobFinished(job_id=job_id, result=JobResult(exit_code=0))
    await executor.disconnect()
    await settle()
    assert job_id not in pool.jobs, "the job gave its executor back before its finished receipt came"
    finished = await signed(validator, to_sign("finished", job_id=job_id, status="completed", duration_s=1.5))
    assert await kept() == [started, accepted_, finished]


async def test_receipts_sent_together_come_back_together_and_a_refused_one_does_not_stop_the_others(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner
) -> None:
    validator, _executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    started, accepted_ = to_sign("started", job_id=job_id), to_sign("accepted", job_id=job_id)
    await validator.send(ReceiptSign(receipt=started, more=[accepted_]))
    answer = await validator.receive(skip=MANIFEST)
    assert isinstance(answer, ReceiptSigned) and [r.payload for r in answer.receipts] == [
        started.payload,
        accepted_.payload,
    ]
    assert await kept() == answer.receipts
    stranger = to_sign("accepted", job_id=new_job_id())  # never held: refused, alone
    again = to_sign("started", job_id=new_job_id())
    await validator.send(ReceiptSign(receipt=stranger, more=[again]))
    assert await validator.receive(skip=MANIFEST) == Error(
        code="unknown_job",
        message="this miner had no attempt 1 of this job in cpu.small for you",
        ref=stranger.payload.job_id,
    )
    answer = await validator.receive(skip=MANIFEST)
    assert isinstance(answer, ReceiptSigned) and [r.payload for r in answer.receipts] == [again.payload]
    assert len(await kept()) == 3


async def test_a_forged_validator_signature_is_refused(dial_validator: Dial) -> None:
    validator = await connected_validator(dial_validator)
    genuine = to_sign()
    forged = STRANGER.sign(RECEIPT_PURPOSE, genuine.payload.model_dump(mode="json"))
    await refused(
        validator,
        genuine.model_copy(update={"validator_signature": forged}),
        "bad_signature",
        "signature does not verify",
    )
    altered = genuine.model_copy(update={"payload": genuine.payload.model_copy(update={"attempt": 2})})
    await refused(validator, altered, "bad_signature", "signature does not verify")


async def test_a_receipt_naming_another_miner_is_refused(dial_validator: Dial) -> None:
    validator = await connected_validator(dial_validator)
    other_miner = Keypair.generate()
    await refused(validator, to_sign(miner=other_miner), "wrong_miner", "the receipt names another miner")


async def test_a_receipt_of_another_validator_sent_by_this_one_is_refused(dial_validator: Dial) -> None:
    validator = await connected_validator(dial_validator)
    theirs = to_sign(validator=OTHER_VALIDATOR)  # genuinely signed by the other validator
    await refused(validator, theirs, "wrong_validator", "the receipt names another validator than this one")


@pytest.mark.parametrize("kind", ["accepted", "finished"])
async def test_a_receipt_for_a_job_the_miner_never_had_is_refused(dial_validator: Dial, kind: str) -> None:
    validator = await connected_validator(dial_validator)
    await refused(
        validator,
        to_sign(kind, job_id=new_job_id()),
        "unknown_job",
        "this miner had no attempt 1 of this job in cpu.small for you",
    )


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"attempt": 2}, "attempt 2 of this job in cpu.small"),
        ({"executor_class": "cpu.large"}, "attempt 1 of this job in cpu.large"),
    ],
    ids=["another-attempt", "another-class"],
)
async def test_an_accepted_receipt_for_another_attempt_or_class_than_the_one_held_is_refused(
    dial_validator: Dial, fields: dict, why: str
) -> None:
    validator = await connected_validator(dial_validator)
    job = initial()
    await accepted(validator, job)
    await refused(
        validator, to_sign("accepted", job_id=job.job_id, **fields), "unknown_job", f"this miner had no {why} for you"
    )


async def test_a_receipt_for_another_validators_job_is_refused(dial_validator: Dial) -> None:
    theirs = await connected_validator(dial_validator, OTHER_VALIDATOR)
    job = initial()
    await accepted(theirs, job)
    mine = await connected_validator(dial_validator)
    await refused(
        mine,
        to_sign("accepted", job_id=job.job_id),
        "unknown_job",
        "this miner had no attempt 1 of this job in cpu.small for you",
    )


async def test_a_finished_receipt_for_a_job_cancelled_before_its_accepted_receipt_is_refused(
    dial_validator: Dial,
) -> None:
    validator = await connected_validator(dial_validator)
    job = initial()
    await accepted(validator, job)
    await validator.send(JobCancel(job_id=job.job_id))
    await validator.expect_nothing(skip=MANIFEST)
    await refused(
        validator,
        to_sign("finished", job_id=job.job_id, status="cancelled"),
        "unknown_job",
        "this miner had no attempt 1 of this job in cpu.small for you",
    )


async def test_the_same_receipt_twice_is_answered_twice_and_kept_once(dial_validator: Dial) -> None:
    validator = await connected_validator(dial_validator)
    job = initial()
    await accepted(validator, job)
    receipt = to_sign("accepted", job_id=job.job_id)
    first = await signed(validator, receipt)
    assert await signed(validator, receipt) == first
    await validator.send(JobCancel(job_id=job.job_id))  # gone from the pool: the kept receipt still counts
    await validator.expect_nothing(skip=MANIFEST)
    assert await signed(validator, receipt) == first
    assert await kept() == [first]


async def test_another_receipt_under_a_kept_key_is_refused(dial_validator: Dial) -> None:
    validator = await connected_validator(dial_validator)
    first = await signed(validator, to_sign())
    job_id = first.payload.job_id
    await refused(
        validator,
        to_sign(job_id=job_id),
        "receipt_conflict",
        f"another started receipt is kept for job {job_id} attempt 1",
    )
    assert await kept() == [first]


async def test_a_malformed_receipt_is_an_invalid_message(dial_validator: Dial) -> None:
    validator = await connected_validator(dial_validator)
    frame = ReceiptSign(receipt=to_sign()).model_dump(mode="json")
    frame["receipt"]["validator_signature"] = "not hex"
    await validator.send(frame)
    error = await validator.receive(skip=MANIFEST)
    assert isinstance(error, Error) and error.code == "invalid_message", error
    assert not await MinerReceipt.objects.aexists()


# -- busy declines ---------------------------------------------------------------------------------


async def test_a_busy_decline_carries_the_receipts_of_the_jobs_holding_every_executor(
    dial_validator: Dial, pool: ExecutorPool
) -> None:
    validator = await connected_validator(dial_validator)
    other = await connected_validator(dial_validator, OTHER_VALIDATOR)
    first, second = initial(), initial()
    await accepted(validator, first)
    await accepted(other, second)
    expected = [
        await signed(validator, to_sign("started", job_id=first.job_id)),
        await signed(validator, to_sign("accepted", job_id=first.job_id)),
        await signed(other, to_sign("started", validator=OTHER_VALIDATOR, job_id=second.job_id)),
        await signed(other, to_sign("accepted", validator=OTHER_VALIDATOR, job_id=second.job_id)),
    ]
    job = initial()
    await validator.send(job)
    declined = await validator.receive(skip=MANIFEST)
    assert isinstance(declined, JobDeclined) and declined.reason == "busy"
    assert declined.receipts == expected
    for receipt in declined.receipts:
        verify_receipt(receipt, miner_hotkey=own_keypair().hotkey)
        assert receipt.payload.executor_class == "cpu.small" and receipt.payload.kind is not ReceiptKind.FINISHED
    assert {(r.payload.job_id, r.payload.attempt) for r in declined.receipts} == {(first.job_id, 1), (second.job_id, 1)}


async def test_a_busy_decline_leaves_out_a_job_whose_finished_receipt_came(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, _, done = await running_job(dial_validator, dial_executor, spawner)
    await signed(validator, to_sign("accepted", job_id=done))
    await signed(validator, to_sign("finished", job_id=done, status="completed"))
    busy = initial()
    await accepted(validator, busy)
    shown = await signed(validator, to_sign("accepted", job_id=busy.job_id))
    job = initial()
    await validator.send(job)
    declined = await validator.receive(skip=MANIFEST)
    assert isinstance(declined, JobDeclined) and declined.reason == "busy"
    assert declined.receipts == [shown]
