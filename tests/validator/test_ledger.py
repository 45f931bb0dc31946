"""The validator's ledger (validator/ledger.py) and the reputation it reloads (validator/reputation.py).

Rows are queued by the ledger and written on ``flush()``; the tests read them back with the ORM.
Receipts and keys are real (ed25519).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from django.db import models

from protocol.keys import Keypair
from protocol.messages import ClassCapacity, JobFailure, JobResult, JobStatusUpdate, OutputRecord, StatusKey
from protocol.receipts import (
    RECEIPT_PURPOSE,
    Receipt,
    ReceiptKind,
    ReceiptPayload,
    countersign,
    outputs_digest,
    sign_receipt,
)
from protocol.status import JobStatus
from validator import ledger as ledger_module
from validator.ledger import BUSY_RECEIPT_AGE_S, Ledger, NullLedger, result_digest
from validator.miners import CapacityWatch
from validator.models import (
    BlacklistEntry,
    Incident,
    JobEvent,
    MinerRecord,
    ReceiptRecord,
    RoutingDecision,
    ValidatorJob,
)
from validator.reputation import load_reputation
from validator.routing import Skip, route

from .test_driver import VALIDATOR, make_miner

pytestmark = pytest.mark.django_db(transaction=True)

MINER, OTHER_MINER, OTHER_VALIDATOR = Keypair.generate(), Keypair.generate(), Keypair.generate()
DIGEST = outputs_digest([("out.txt", "aa" * 32)])


def make_receipt(
    kind: ReceiptKind = ReceiptKind.STARTED,
    *,
    validator: Keypair = VALIDATOR,
    miner: Keypair = MINER,
    signer: Keypair | None = None,
    **changes: Any,
) -> Receipt:
    """A receipt signed by ``validator`` and countersigned by ``signer`` (the miner it names by default)."""
    fields: dict[str, Any] = {
        "kind": kind,
        "job_id": "job-1",
        "attempt": 1,
        "validator_hotkey": validator.hotkey,
        "miner_hotkey": miner.hotkey,
        "executor_class": "cpu.small",
        "at": time.time(),
    }
    if kind is ReceiptKind.FINISHED:
        fields.update(status="completed", duration_s=1.5, outputs_digest=DIGEST)
    fields.update(changes)
    half = sign_receipt(validator, ReceiptPayload(**fields))
    if signer is None:
        return countersign(miner, half)
    return half.model_copy(update={"miner_signature": miner_half(signer, half.payload)})


def miner_half(signer: Keypair, payload: ReceiptPayload) -> str:
    """A miner signature over ``payload`` by whoever ``signer`` is (a forgery unless it is the named miner)."""
    return signer.sign(RECEIPT_PURPOSE, payload.model_dump(mode="json"))


async def rows(model: type[models.Model], **filters: Any) -> list[Any]:
    return [row async for row in model.objects.filter(**filters)]


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 3.0) -> None:
    """Poll ``check`` (plain or async) until it holds; the ledger's background task works meanwhile."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if await value if inspect.isawaitable(value) else value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the ledger")
        await asyncio.sleep(0.01)


# -- the outputs digest ----------------------------------------------------------------------------


def test_the_result_digest_covers_outputs_and_logs_by_path_whatever_their_order() -> None:
    a = OutputRecord(path="out/a", sha256="aa" * 32, size=1)
    b = OutputRecord(path="out/b", sha256="bb" * 32, size=2, kind="url")
    log = OutputRecord(path="stdout", sha256="cc" * 32, size=3, ref="k-stdout")
    result = JobResult(exit_code=0, outputs=[a, b], logs=[log])
    expected = outputs_digest([("out/a", "aa" * 32), ("out/b", "bb" * 32), ("stdout", "cc" * 32)])
    assert result_digest(result) == expected
    assert result_digest(JobResult(exit_code=0, outputs=[b, a], logs=[log])) == expected
    # Where a file was stored (ref, kind) is not part of what it is.
    assert (
        result_digest(JobResult(exit_code=0, outputs=[a, b], logs=[log.model_copy(update={"ref": None})])) == expected
    )
    assert result_digest(JobResult(exit_code=0, outputs=[a, b])) != expected
    changed = b.model_copy(update={"sha256": "dd" * 32})
    assert result_digest(JobResult(exit_code=0, outputs=[a, changed], logs=[log])) != expected


# -- the null ledger -------------------------------------------------------------------------------


def test_the_null_ledger_records_nothing_and_trusts_every_busy_decline() -> None:
    ledger = NullLedger()
    assert ledger.receipt(ReceiptKind.STARTED, "job-1", 1, MINER.hotkey, "cpu.small") is None
    ledger.incident(MINER.hotkey, "infra_failure", "job-1")
    assert ledger.reputation.weight(MINER.hotkey) == 1.0
    assert ledger.busy_proven(MINER.hotkey, "cpu.small", [], 4) is True


# -- rows written after a flush --------------------------------------------------------------------


async def test_nothing_is_written_before_a_flush_and_everything_after() -> None:
    ledger = Ledger(VALIDATOR)
    ledger.incident(MINER.hotkey, "infra_failure", "job-1", "stage timeout")
    assert "1 rows queued" in repr(ledger)
    assert await Incident.objects.acount() == 0
    await ledger.flush()
    assert await Incident.objects.acount() == 1
    assert "0 rows queued" in repr(ledger)
    await ledger.flush()  # nothing queued: nothing written twice
    assert await Incident.objects.acount() == 1


async def test_a_status_update_becomes_a_job_event_with_its_failure_but_not_its_logs() -> None:
    ledger = Ledger(VALIDATOR)
    log = OutputRecord(path="stderr", sha256="ee" * 32, size=4, ref="k-stderr")
    failure = JobFailure(reason="nonzero_exit", message="exit 1", stage="execution", exit_code=1, logs=[log])
    ledger.status(
        JobStatusUpdate(
            job_id="job-1",
            status=JobStatus.FAILED,
            attempt=2,
            miner=MINER.hotkey,
            at=1_700_000_000.5,
            failure=failure,
            detail={"retrying": False},
        )
    )
    ledger.status(JobStatusUpdate(job_id="job-1", status=JobStatus.ACCEPTED, at=1_700_000_000.0))
    await ledger.flush()
    accepted, failed = await rows(JobEvent, job_id="job-1")
    assert (accepted.status, accepted.miner_hotkey, accepted.attempt) == ("accepted", "", 1)
    assert (failed.status, failed.attempt, failed.miner_hotkey, failed.at) == (
        "failed",
        2,
        MINER.hotkey,
        1_700_000_000.5,
    )
    assert failed.detail["retrying"] is False
    assert failed.detail["failure"]["reason"] == "nonzero_exit" and failed.detail["failure"]["exit_code"] == 1
    assert "logs" not in failed.detail["failure"]


async def test_a_batch_moves_each_running_jobs_row_to_its_newest_status_and_never_past_its_end() -> None:
    for job_id, status in (("job-run", JobStatus.RECEIVED), ("job-end", JobStatus.COMPLETED)):
        await ValidatorJob.objects.acreate(
            job_id=job_id, client_hotkey=MINER.hotkey, spec={}, client_signature="s", status=status
        )
    ledger = Ledger(VALIDATOR)
    ledger.status(JobStatusUpdate(job_id="job-run", status=JobStatus.ACCEPTED, miner=MINER.hotkey, at=1.0))
    ledger.status(JobStatusUpdate(job_id="job-run", status=JobStatus.EXECUTOR_READY, at=2.0))  # names no miner
    ledger.status(JobStatusUpdate(job_id="job-end", status=JobStatus.EXECUTION_DONE, miner=MINER.hotkey, at=3.0))
    await ledger.flush()
    running = await ValidatorJob.objects.aget(job_id="job-run")
    assert (running.status, running.miner_hotkey) == ("executor_ready", MINER.hotkey)  # the miner kept
    ended = await ValidatorJob.objects.aget(job_id="job-end")
    assert (ended.status, ended.miner_hotkey) == ("completed", "")  # an ended job's row stays as it ended
    assert await JobEvent.objects.acount() == 3  # every status is history all the same


async def test_an_acknowledged_end_is_marked_with_the_next_batch_and_nothing_else_is() -> None:
    for job_id, status, attempt in (("job-a", JobStatus.COMPLETED, 1), ("job-b", JobStatus.FAILED, 2)):
        await ValidatorJob.objects.acreate(
            job_id=job_id, client_hotkey=MINER.hotkey, spec={}, client_signature="s", status=status, attempt=attempt
        )
    ledger = Ledger(VALIDATOR)
    ledger.acknowledged(
        [
            StatusKey(job_id="job-a", attempt=1, status=JobStatus.ACCEPTED),  # not an end: nothing to mark
            StatusKey(job_id="job-b", attempt=1, status=JobStatus.FAILED),  # another attempt's end
        ]
    )
    await ledger.flush()
    assert not await ValidatorJob.objects.filter(final_acked=True).aexists()
    ledger.acknowledged([StatusKey(job_id="job-a", attempt=1, status=JobStatus.COMPLETED)])
    await ledger.flush()
    assert [job async for job in ValidatorJob.objects.filter(final_acked=True).values_list("job_id", flat=True)] == [
        "job-a"
    ]


async def test_a_batch_that_fails_as_a_whole_is_written_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger(VALIDATOR)
    monkeypatch.setattr(ledger_module, "_progress", lambda updates: (_ for _ in ()).throw(RuntimeError("locked")))
    ledger.status(JobStatusUpdate(job_id="job-1", status=JobStatus.ACCEPTED, at=1.0))
    ledger.countersigned(MINER.hotkey, make_receipt(ReceiptKind.FINISHED, job_id="job-1", attempt=1))
    ledger.incident(MINER.hotkey, "infra_failure", "job-1")
    await ledger.flush()
    # The event, the receipt and the incident are written; the failing row alone is lost.
    assert [e.status async for e in JobEvent.objects.all()] == ["accepted"]
    assert await ReceiptRecord.objects.acount() == 1 and await Incident.objects.acount() == 1


async def test_a_routing_decision_is_recorded_with_its_candidates_and_skip_counts() -> None:
    capacity = CapacityWatch()
    chosen, tried, busy = await make_miner(capacity), await make_miner(capacity), await make_miner(capacity, free=0)
    decision = route([chosen, tried, busy], "cpu.small", exclude={tried.hotkey})
    ledger = Ledger(VALIDATOR)
    ledger.routed("job-1", 1, decision)
    ledger.routed("job-1", 2, route([busy], "cpu.small"))
    await ledger.flush()
    [first] = await rows(RoutingDecision, job_id="job-1", attempt=1)
    assert (first.chosen, first.reason, first.executor_class) == (chosen.hotkey, "only_candidate", "cpu.small")
    assert first.candidates == [
        {"hotkey": chosen.hotkey, "free": 1, "weight": 1.0, "skipped": None},
        {"hotkey": tried.hotkey, "free": 1, "weight": 0.0, "skipped": "tried"},
    ]
    assert first.skipped == {Skip.TRIED: 1, Skip.NO_FREE_EXECUTOR: 1, "eligible": 1}
    [second] = await rows(RoutingDecision, job_id="job-1", attempt=2)
    assert (second.chosen, second.reason, second.candidates) == ("", "no_candidate", [])


async def test_an_incident_lowers_the_weight_at_once_and_is_written_with_its_evidence() -> None:
    ledger = Ledger(VALIDATOR)
    before = time.time()
    ledger.incident(MINER.hotkey, "infra_failure", "job-1", "x" * 3000, evidence={"stage": "upload"})
    assert ledger.reputation.recent_incidents(MINER.hotkey) == 1
    assert ledger.reputation.weight(MINER.hotkey) == 0.5
    await ledger.flush()
    [row] = await rows(Incident, miner_hotkey=MINER.hotkey)
    assert (row.kind, row.job_id, row.evidence) == ("infra_failure", "job-1", {"stage": "upload"})
    assert len(row.message) == 2000 and before <= row.at <= time.time()


async def test_a_blacklisting_skips_the_miner_at_once_and_writes_the_incident_and_the_entry() -> None:
    ledger = Ledger(VALIDATOR, blacklist_s=600.0)
    before = time.time()
    until = ledger.blacklist(MINER.hotkey, "outputs differ", "crossval_mismatch", "job-9", evidence={"a": "b"})
    assert before + 600.0 <= until <= time.time() + 600.0
    assert ledger.reputation.is_blacklisted(MINER.hotkey)
    assert ledger.reputation.weight(MINER.hotkey) == 0.0
    assert ledger.reputation.blacklist_reasons[MINER.hotkey] == "outputs differ"
    await ledger.flush()
    [entry] = await rows(BlacklistEntry, miner_hotkey=MINER.hotkey)
    incident = await Incident.objects.aget(id=entry.incident_id)
    assert (entry.reason, entry.until, entry.created_by, entry.lifted_at) == (
        "outputs differ",
        until,
        "validator",
        None,
    )
    assert (incident.kind, incident.job_id, incident.evidence) == ("crossval_mismatch", "job-9", {"a": "b"})
    assert incident.message == "outputs differ"


async def test_a_blacklisting_can_be_given_its_own_length() -> None:
    ledger = Ledger(VALIDATOR, blacklist_s=600.0)
    until = ledger.blacklist(MINER.hotkey, "report", "malicious_report", seconds=5.0)
    assert until <= time.time() + 5.0
    assert not ledger.reputation.is_blacklisted(MINER.hotkey, until + 0.001)


async def test_a_manifest_is_kept_per_miner_and_marks_trusted_miners() -> None:
    ledger = Ledger(VALIDATOR, trusted=frozenset({OTHER_MINER.hotkey}))
    ledger.manifest(MINER.hotkey, {"cpu.small": ClassCapacity(total=2, free=1)}, True)
    ledger.manifest(OTHER_MINER.hotkey, {}, True)
    await ledger.flush()
    ledger.manifest(MINER.hotkey, {}, False)  # the connection dropped
    await ledger.flush()
    mine = await MinerRecord.objects.aget(hotkey=MINER.hotkey)
    assert (mine.manifest, mine.connected, mine.trusted) == ({}, False, False)
    trusted = await MinerRecord.objects.aget(hotkey=OTHER_MINER.hotkey)
    assert trusted.trusted is True


async def test_of_several_manifests_queued_for_a_miner_only_the_newest_is_written() -> None:
    ledger = Ledger(VALIDATOR)
    for free in (2, 1, 0, 1):
        ledger.manifest(MINER.hotkey, {"cpu.small": ClassCapacity(total=2, free=free)}, True)
    ledger.manifest(OTHER_MINER.hotkey, {}, True)
    assert "2 rows queued" in repr(ledger)
    await ledger.flush()
    mine = await MinerRecord.objects.aget(hotkey=MINER.hotkey)
    assert mine.manifest["cpu.small"]["free"] == 1
    assert await MinerRecord.objects.acount() == 2


async def test_a_change_of_free_counts_alone_waits_for_the_reload_but_is_not_lost() -> None:
    async def row() -> MinerRecord | None:
        return await MinerRecord.objects.filter(hotkey=MINER.hotkey).afirst()

    async def until(check: Callable[[], Awaitable[bool]]) -> None:
        for _ in range(200):
            if await check():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("not written within 4 s")

    ledger = Ledger(VALIDATOR)
    runner = asyncio.create_task(ledger.run(reload_s=60))
    try:
        ledger.manifest(MINER.hotkey, {"cpu.small": ClassCapacity(total=2, free=2)}, True)
        await until(lambda: row())  # a new miner: written at once
        ledger.manifest(MINER.hotkey, {"cpu.small": ClassCapacity(total=2, free=1)}, True)
        await asyncio.sleep(0.2)  # only the free count moved: nothing is written for it alone
        assert (await row()).manifest["cpu.small"]["free"] == 2
        ledger.incident(MINER.hotkey, "infra_failure", "job-1", "stage timeout")  # nor with the next write
        await until(Incident.objects.aexists)
        assert (await row()).manifest["cpu.small"]["free"] == 2
        await ledger.flush()  # what the reload does first, every reload_s
        assert (await row()).manifest["cpu.small"]["free"] == 1
        ledger.manifest(MINER.hotkey, {"cpu.small": ClassCapacity(total=2, free=1)}, False)

        async def disconnected() -> bool:
            return (await row()).connected is False

        await until(disconnected)  # disconnected: written at once
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_a_batch_is_one_transaction_and_a_failing_row_loses_only_itself() -> None:
    ledger = Ledger(VALIDATOR)
    seen_in_transaction: list[bool] = []

    def failing() -> None:
        from django.db import connection

        seen_in_transaction.append(connection.in_atomic_block)
        raise RuntimeError("this row cannot be written")

    ledger.incident(MINER.hotkey, "infra_failure", "job-1", "before")
    ledger._queue(failing)
    ledger.incident(MINER.hotkey, "infra_failure", "job-2", "after")
    await ledger.flush()
    assert seen_in_transaction == [True]
    assert sorted([i.job_id async for i in Incident.objects.all()]) == ["job-1", "job-2"]


# -- receipts --------------------------------------------------------------------------------------


async def test_the_ledger_signs_the_validators_half_of_a_receipt() -> None:
    ledger = Ledger(VALIDATOR)
    half = ledger.receipt(ReceiptKind.FINISHED, "job-1", 2, MINER.hotkey, "cpu.small", status="failed", duration_s=3.0)
    assert not half.complete
    assert (half.payload.validator_hotkey, half.payload.miner_hotkey) == (VALIDATOR.hotkey, MINER.hotkey)
    assert (half.payload.kind, half.payload.attempt, half.payload.status) == (ReceiptKind.FINISHED, 2, "failed")
    ledger.countersigned(MINER.hotkey, countersign(MINER, half))
    await ledger.flush()
    [row] = await rows(ReceiptRecord)
    assert (row.job_id, row.attempt, row.kind, row.status) == ("job-1", 2, "finished", "failed")
    assert Receipt.model_validate(row.receipt).miner_signature is not None


async def test_a_countersigned_receipt_is_stored_once_with_both_signatures() -> None:
    ledger = Ledger(VALIDATOR)
    receipt = make_receipt(ReceiptKind.FINISHED, job_id="job-7", attempt=2)
    ledger.countersigned(MINER.hotkey, receipt)
    ledger.countersigned(MINER.hotkey, receipt)  # redelivered
    await ledger.flush()
    ledger.countersigned(MINER.hotkey, receipt)  # and again, in a later batch
    await ledger.flush()
    [row] = await rows(ReceiptRecord)
    assert (row.job_id, row.attempt, row.kind, row.status) == ("job-7", 2, "finished", "completed")
    assert (row.validator_hotkey, row.miner_hotkey, row.executor_class) == (VALIDATOR.hotkey, MINER.hotkey, "cpu.small")
    assert row.at == receipt.payload.at
    assert Receipt.model_validate(row.receipt) == receipt


@pytest.mark.parametrize(
    "case",
    ["forged_miner_signature", "another_validators", "another_miners", "not_countersigned", "forged_validator_half"],
)
async def test_a_receipt_that_does_not_verify_or_is_not_ours_is_not_stored(case: str) -> None:
    ledger = Ledger(VALIDATOR)
    connection = MINER.hotkey
    if case == "forged_miner_signature":
        receipt = make_receipt(signer=OTHER_MINER)
    elif case == "another_validators":
        receipt = make_receipt(validator=OTHER_VALIDATOR)
    elif case == "another_miners":
        receipt = make_receipt(miner=OTHER_MINER)  # valid, but MINER's connection returned it
    elif case == "not_countersigned":
        receipt = make_receipt().model_copy(update={"miner_signature": None})
    else:
        # The miner signs a payload the validator never signed (another attempt): the validator's half fails.
        good = make_receipt()
        tampered = good.payload.model_copy(update={"attempt": 5})
        receipt = good.model_copy(update={"payload": tampered, "miner_signature": miner_half(MINER, tampered)})
    ledger.countersigned(connection, receipt)
    await ledger.flush()
    assert await ReceiptRecord.objects.acount() == 0


# -- busy declines ---------------------------------------------------------------------------------


async def test_a_busy_decline_with_a_valid_receipt_per_executor_is_proven() -> None:
    ledger = Ledger(VALIDATOR)
    ledger.known_validators = lambda: frozenset({OTHER_VALIDATOR.hotkey})  # as the registry lists it
    receipts = [
        make_receipt(ReceiptKind.STARTED, job_id="job-a"),
        make_receipt(ReceiptKind.ACCEPTED, job_id="job-b", validator=OTHER_VALIDATOR),  # another validator's job
    ]
    assert ledger.busy_proven(MINER.hotkey, "cpu.small", receipts, 2) is True
    await ledger.flush()
    assert await Incident.objects.acount() == 0
    assert ledger.reputation.recent_incidents(MINER.hotkey) == 0


async def test_two_receipts_of_one_job_prove_only_one_busy_executor() -> None:
    ledger = Ledger(VALIDATOR)
    receipts = [make_receipt(ReceiptKind.STARTED), make_receipt(ReceiptKind.ACCEPTED)]
    assert ledger.busy_proven(MINER.hotkey, "cpu.small", receipts, 1) is True
    assert ledger.busy_proven(MINER.hotkey, "cpu.small", receipts, 2) is False


@pytest.mark.parametrize(
    "case", ["none", "forged", "finished", "other_class", "too_old", "another_miners", "not_countersigned"]
)
async def test_a_busy_decline_that_does_not_prove_itself_is_an_incident(case: str) -> None:
    receipts = {
        "none": [],
        "forged": [make_receipt(signer=OTHER_MINER)],
        "finished": [make_receipt(ReceiptKind.FINISHED)],
        "other_class": [make_receipt(executor_class="gpu.24gb")],
        "too_old": [make_receipt(at=time.time() - BUSY_RECEIPT_AGE_S - 60)],
        "another_miners": [make_receipt(miner=OTHER_MINER)],
        "not_countersigned": [make_receipt().model_copy(update={"miner_signature": None})],
    }[case]
    ledger = Ledger(VALIDATOR)
    assert ledger.busy_proven(MINER.hotkey, "cpu.small", receipts, 1) is False
    assert ledger.reputation.recent_incidents(MINER.hotkey) == 1
    await ledger.flush()
    [incident] = await rows(Incident, miner_hotkey=MINER.hotkey)
    assert incident.kind == "busy_unproven"
    assert incident.message == "declined as busy showing 0 valid receipt(s) for 1 cpu.small executor(s)"


async def test_a_class_without_executors_still_needs_one_receipt() -> None:
    ledger = Ledger(VALIDATOR)
    assert ledger.busy_proven(MINER.hotkey, "cpu.small", [], 0) is False
    assert ledger.busy_proven(MINER.hotkey, "cpu.small", [make_receipt()], 0) is True


# -- reputation from the database ------------------------------------------------------------------


def test_load_reputation_counts_recent_incidents_and_active_blacklist_entries_only() -> None:
    now = 1_800_000_000.0
    a, b, c, d = (Keypair.generate().hotkey for _ in range(4))
    Incident.objects.create(miner_hotkey=a, kind="infra_failure", at=now - 10)
    Incident.objects.create(miner_hotkey=a, kind="busy_unproven", at=now - 3599)
    Incident.objects.create(miner_hotkey=a, kind="infra_failure", at=now - 3601)  # out of the window
    BlacklistEntry.objects.create(miner_hotkey=b, reason="report", until=now + 60, created_at=now - 1)
    BlacklistEntry.objects.create(  # lifted by an operator
        miner_hotkey=c, reason="report", until=now + 60, created_at=now - 1, lifted_at=now - 0.5, lifted_by="ops"
    )
    BlacklistEntry.objects.create(miner_hotkey=d, reason="old", until=now - 1, created_at=now - 100)  # over
    reputation = load_reputation(3600.0, now)
    assert reputation.recent_incidents(a, now) == 2
    assert reputation.weight(a, now) == pytest.approx(1 / 3)
    assert reputation.is_blacklisted(b, now) and reputation.weight(b, now) == 0.0
    assert reputation.blacklist_reasons[b] == "report"
    assert not reputation.is_blacklisted(c, now) and not reputation.is_blacklisted(d, now)
    assert reputation.weight(c, now) == 1.0 and reputation.weight(d, now) == 1.0
    assert load_reputation(10.0, now).recent_incidents(a, now) == 1


def test_load_reputation_keeps_the_longest_of_several_active_entries() -> None:
    now = 1_800_000_000.0
    BlacklistEntry.objects.create(miner_hotkey=MINER.hotkey, reason="short", until=now + 10, created_at=now)
    BlacklistEntry.objects.create(miner_hotkey=MINER.hotkey, reason="long", until=now + 500, created_at=now)
    reputation = load_reputation(now=now)
    assert reputation.blacklisted_until[MINER.hotkey] == now + 500
    assert reputation.blacklist_reasons[MINER.hotkey] == "long"


async def test_run_writes_rows_as_they_come_and_reloads_operator_actions() -> None:
    ledger = Ledger(VALIDATOR)
    runner = asyncio.create_task(ledger.run(reload_s=0.05))
    try:
        ledger.incident(MINER.hotkey, "infra_failure", "job-1")
        await eventually(lambda: Incident.objects.filter(miner_hotkey=MINER.hotkey).aexists())
        now = time.time()
        await BlacklistEntry.objects.acreate(
            miner_hotkey=OTHER_MINER.hotkey, reason="by hand", until=now + 600, created_at=now, created_by="ops"
        )
        await eventually(lambda: ledger.reputation.is_blacklisted(OTHER_MINER.hotkey))
        assert ledger.reputation.blacklist_reasons[OTHER_MINER.hotkey] == "by hand"
        # The reload kept the incident noted before it (it was written first).
        assert ledger.reputation.recent_incidents(MINER.hotkey) == 1
        await BlacklistEntry.objects.filter(miner_hotkey=OTHER_MINER.hotkey).aupdate(lifted_at=time.time())
        await eventually(lambda: not ledger.reputation.is_blacklisted(OTHER_MINER.hotkey))
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def test_a_miner_cannot_prove_itself_busy_with_a_validator_key_of_its_own() -> None:
    made_up = Keypair.generate()  # the miner's own second key, posing as a validator
    receipts = [make_receipt(ReceiptKind.STARTED, job_id=f"fake-{n}", validator=made_up) for n in range(4)]
    assert Ledger(VALIDATOR).busy_proven(MINER.hotkey, "cpu.small", receipts, 4) is False


async def test_a_blacklisting_noted_during_a_reload_is_not_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    loading, release = threading.Event(), threading.Event()
    real_load = ledger_module.load_reputation

    def slow_load(*args: Any, **kwargs: Any) -> Any:
        loading.set()
        release.wait(3)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(ledger_module, "load_reputation", slow_load)
    ledger = Ledger(VALIDATOR)
    before = ledger.reputation
    runner = asyncio.create_task(ledger.run(reload_s=60.0))
    try:
        assert await asyncio.to_thread(loading.wait, 3)
        ledger.blacklist(MINER.hotkey, "outputs differ", "crossval_mismatch")
        assert ledger.reputation.is_blacklisted(MINER.hotkey)
        release.set()
        await eventually(lambda: ledger.reputation is not before)
        assert ledger.reputation.is_blacklisted(MINER.hotkey)
    finally:
        release.set()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


def test_a_receipt_is_kept_once_whoever_brings_it() -> None:
    """The ledger's own receipts and the ones fetched from miners go through one insert."""
    receipt = make_receipt()
    assert ReceiptRecord.objects.keep(receipt) is True
    assert ReceiptRecord.objects.keep(receipt) is False
    [row] = ReceiptRecord.objects.all()
    assert (row.job_id, row.kind, row.miner_hotkey) == (receipt.payload.job_id, "started", receipt.payload.miner_hotkey)
    assert row.receipt == receipt.model_dump(mode="json")
