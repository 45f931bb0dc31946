"""Cross-validation (validator/crossval.py): a check run on a trusted miner, fed by hand.

The miners are real MinerConnection objects without sockets (tests/validator/test_driver.py);
the ledger is real and writes the blacklisting to the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from protocol.messages import (
    ClassCapacity,
    ExecutionDone,
    ExecutorReady,
    JobAccepted,
    JobContext,
    JobFailed,
    JobFailure,
    JobFinished,
    JobFull,
    JobInitial,
    JobResult,
    Manifest,
    OutputRecord,
    StoreLink,
    StoreLinks,
    VolumesReady,
)
from validator.crossval import CrossValidator
from validator.driver import ActiveJob
from validator.ledger import Ledger, result_digest
from validator.miners import CapacityWatch, MinerConnection
from validator.models import BlacklistEntry, Incident

from .test_driver import VALIDATOR, answer, make_job, make_miner, sent


def record(path: str, data: bytes, ref: str | None = None) -> OutputRecord:
    return OutputRecord(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), ref=ref)


# What the client's miner uploaded, and what an honest check run digests for the same files.
UPLOADED = JobResult(
    exit_code=0,
    outputs=[record("out/answer.txt", b"42\n", ref="k-answer")],
    logs=[record("stdout", b"done\n", ref="k-stdout")],
)
AGREEING = JobResult(exit_code=0, outputs=[record("out/answer.txt", b"42\n")], logs=[record("stdout", b"done\n")])
DIFFERING = JobResult(exit_code=0, outputs=[record("out/answer.txt", b"41\n")], logs=[record("stdout", b"done\n")])


def crossvalidator(
    miners: list[MinerConnection],
    trusted: set[str],
    capacity: CapacityWatch,
    *,
    sample: float = 1.0,
    ledger: Ledger | None = None,
    queue_timeout: float = 2.0,
    seed: int = 0,
) -> CrossValidator:
    return CrossValidator(
        lambda: miners,
        ledger or Ledger(VALIDATOR),
        frozenset(trusted),
        sample,
        capacity=capacity,
        queue_timeout=queue_timeout,
        rng=random.Random(seed),
    )


async def serve_check(miner: MinerConnection, job: ActiveJob, result: JobResult) -> tuple[JobInitial, JobFull]:
    """Play the trusted miner through a check run that ends with ``result``."""
    initial = await sent(miner)
    assert isinstance(initial, JobInitial) and initial.job_id == job.job_id
    await answer(miner, JobAccepted(job_id=job.job_id), ExecutorReady(job_id=job.job_id))
    full = await sent(miner)
    assert isinstance(full, JobFull), "a check run signs no receipts: job.full comes next"
    await answer(
        miner,
        VolumesReady(job_id=job.job_id),
        ExecutionDone(job_id=job.job_id),
        JobFinished(job_id=job.job_id, result=result),
    )
    return initial, full


def completed_job() -> ActiveJob:
    """A batch job that completed on its second attempt, with the facilitator's upload links."""
    job = make_job()
    job.attempt = 2
    job.context = JobContext(
        links=StoreLinks(outputs={"out/answer.txt": StoreLink(key="k-answer", url="http://store/k-answer")})
    )
    return job


# -- checking --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_trusted_run_with_the_same_outputs_agrees_and_records_nothing() -> None:
    capacity = CapacityWatch()
    miner, trusted = await make_miner(capacity), await make_miner(capacity)
    ledger = Ledger(VALIDATOR)
    validator = crossvalidator([miner, trusted], {trusted.hotkey}, capacity, ledger=ledger)
    job = completed_job()
    check = validator.start(job, miner.hotkey, UPLOADED)
    initial, full = await serve_check(trusted, job, AGREEING)
    assert await check is True
    # The check run is marked as one, starts over at attempt 1 and carries no upload links.
    assert initial.crossval is True and initial.attempt == 1
    assert full.context == JobContext()
    assert full.spec == job.spec_raw and full.client_signature == job.client_signature
    # The client's job is left as it was.
    assert job.crossval is False and job.attempt == 2 and "out/answer.txt" in job.context.links.outputs
    assert miner.client._outbox.empty()
    await ledger.flush()
    assert await Incident.objects.acount() == 0 and await BlacklistEntry.objects.acount() == 0
    assert not ledger.reputation.is_blacklisted(miner.hotkey)
    assert validator.tasks == set()


@pytest.mark.django_db(transaction=True)
async def test_different_outputs_blacklist_the_miner_with_both_results_as_evidence() -> None:
    capacity = CapacityWatch()
    miner, trusted = await make_miner(capacity), await make_miner(capacity)
    ledger = Ledger(VALIDATOR, blacklist_s=3600.0)
    validator = crossvalidator([miner, trusted], {trusted.hotkey}, capacity, ledger=ledger)
    job = completed_job()
    check = validator.start(job, miner.hotkey, UPLOADED)
    await serve_check(trusted, job, DIFFERING)
    assert await check is False
    assert ledger.reputation.is_blacklisted(miner.hotkey)
    assert not ledger.reputation.is_blacklisted(trusted.hotkey)
    await ledger.flush()
    [entry] = [row async for row in BlacklistEntry.objects.all()]
    incident = await Incident.objects.aget(id=entry.incident_id)
    assert entry.miner_hotkey == miner.hotkey and entry.reason.startswith(f"cross-validation of job {job.job_id}")
    assert (incident.kind, incident.job_id, incident.miner_hotkey) == ("crossval_mismatch", job.job_id, miner.hotkey)
    evidence = incident.evidence
    assert evidence["trusted_miner"] == trusted.hotkey
    assert evidence["trusted_digest"] == result_digest(DIFFERING)
    assert evidence["miner_digest"] == result_digest(UPLOADED)
    assert evidence["trusted_digest"] != evidence["miner_digest"]
    assert [r["sha256"] for r in evidence["miner_records"]] == [r.sha256 for r in [*UPLOADED.outputs, *UPLOADED.logs]]
    assert [r["path"] for r in evidence["trusted_records"]] == ["out/answer.txt", "stdout"]


async def test_a_missing_log_is_a_mismatch_too() -> None:
    capacity = CapacityWatch()
    miner, trusted = await make_miner(capacity), await make_miner(capacity)
    ledger = Ledger(VALIDATOR)
    validator = crossvalidator([miner, trusted], {trusted.hotkey}, capacity, ledger=ledger)
    job = completed_job()
    check = validator.start(job, miner.hotkey, UPLOADED)
    await serve_check(trusted, job, JobResult(exit_code=0, outputs=AGREEING.outputs))
    assert await check is False
    assert ledger.reputation.is_blacklisted(miner.hotkey)


async def test_the_miner_that_ran_the_job_never_checks_itself() -> None:
    capacity = CapacityWatch()
    miner = await make_miner(capacity)  # trusted too, and the only one free
    trusted = await make_miner(capacity, free=0)
    validator = crossvalidator([miner, trusted], {miner.hotkey, trusted.hotkey}, capacity)
    job = completed_job()
    check = validator.start(job, miner.hotkey, UPLOADED)
    await asyncio.sleep(0.1)
    assert miner.client._outbox.empty() and trusted.client._outbox.empty()
    await answer(trusted, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1)}))
    await serve_check(trusted, job, AGREEING)
    assert await check is True
    assert miner.client._outbox.empty()


async def test_without_another_trusted_miner_the_check_cannot_be_made() -> None:
    capacity = CapacityWatch()
    miner, untrusted = await make_miner(capacity), await make_miner(capacity)
    ledger = Ledger(VALIDATOR)
    job = completed_job()
    # The only trusted miner is the one that ran the job; one more is configured but not connected.
    validator = crossvalidator([miner, untrusted], {miner.hotkey, "f" * 64}, capacity, ledger=ledger)
    assert await asyncio.wait_for(validator.check(job, miner.hotkey, UPLOADED), 2) is None
    assert miner.client._outbox.empty() and untrusted.client._outbox.empty()
    assert not ledger.reputation.is_blacklisted(miner.hotkey)
    assert ledger.reputation.recent_incidents(miner.hotkey) == 0


async def test_a_check_run_that_fails_proves_nothing() -> None:
    capacity = CapacityWatch()
    miner, trusted = await make_miner(capacity), await make_miner(capacity)
    ledger = Ledger(VALIDATOR)
    validator = crossvalidator([miner, trusted], {trusted.hotkey}, capacity, ledger=ledger)
    job = completed_job()
    check = validator.start(job, miner.hotkey, UPLOADED)
    assert isinstance(await sent(trusted), JobInitial)
    failure = JobFailure(reason="nonzero_exit", message="exit 1", stage="execution", exit_code=1)
    await answer(trusted, JobAccepted(job_id=job.job_id), JobFailed(job_id=job.job_id, failure=failure))
    assert await check is None
    assert not ledger.reputation.is_blacklisted(miner.hotkey)
    # A check run records nothing of its own, not even the trusted miner's failure.
    assert ledger.reputation.recent_incidents(trusted.hotkey) == 0


async def test_a_check_run_skips_blacklisted_trusted_miners() -> None:
    capacity = CapacityWatch()
    miner, banned, trusted = await make_miner(capacity), await make_miner(capacity), await make_miner(capacity)
    ledger = Ledger(VALIDATOR)
    ledger.reputation.note_blacklist(banned.hotkey, 4e9, "by hand")
    validator = crossvalidator([miner, banned, trusted], {banned.hotkey, trusted.hotkey}, capacity, ledger=ledger)
    job = completed_job()
    check = validator.start(job, miner.hotkey, UPLOADED)
    await serve_check(trusted, job, AGREEING)
    assert await check is True
    assert banned.client._outbox.empty()


# -- which jobs are checked ------------------------------------------------------------------------


async def test_the_sample_rate_decides_for_ordinary_batch_jobs() -> None:
    capacity = CapacityWatch()
    trusted = {"t" * 64}
    job, miner = make_job(), "m" * 64
    never = crossvalidator([], trusted, capacity, sample=0.0)
    always = crossvalidator([], trusted, capacity, sample=1.0)
    assert not any(never.wanted(job, miner) for _ in range(200))
    assert all(always.wanted(job, miner) for _ in range(200))
    half = crossvalidator([], trusted, capacity, sample=0.5, seed=5)
    assert 400 < sum(half.wanted(job, miner) for _ in range(1000)) < 600


async def test_a_job_asking_for_a_trusted_miner_is_always_checked() -> None:
    validator = crossvalidator([], {"t" * 64}, CapacityWatch(), sample=0.0)
    assert validator.wanted(make_job(on_trusted_miner=True), "m" * 64)


async def test_streaming_jobs_are_never_checked() -> None:
    validator = crossvalidator([], {"t" * 64}, CapacityWatch(), sample=1.0)
    key = "ab" * 32
    assert not validator.wanted(make_job(streaming=True, streaming_public_key=key), "m" * 64)
    assert not validator.wanted(make_job(streaming=True, streaming_public_key=key, on_trusted_miner=True), "m" * 64)


async def test_a_trusted_miners_own_jobs_and_a_validator_without_trusted_miners_check_nothing() -> None:
    trusted = crossvalidator([], {"t" * 64}, CapacityWatch(), sample=1.0)
    assert not trusted.wanted(make_job(), "t" * 64)
    assert not trusted.wanted(make_job(on_trusted_miner=True), "t" * 64)
    nobody = crossvalidator([], set(), CapacityWatch(), sample=1.0)
    assert not nobody.wanted(make_job(on_trusted_miner=True), "m" * 64)
    assert repr(trusted) == "<CrossValidator 1 trusted, sample 1, 0 running>"


async def test_a_streaming_job_on_a_trusted_miner_may_only_run_on_trusted_miners() -> None:
    capacity = CapacityWatch()
    trusted, other = await make_miner(capacity), await make_miner(capacity)
    crossval = CrossValidator(lambda: [trusted, other], Ledger(VALIDATOR), frozenset({trusted.hotkey}), 0.0)
    streaming = make_job(streaming=True, streaming_public_key="ab" * 32, on_trusted_miner=True)
    assert crossval.miners_for(streaming)() == [trusted]
    assert crossval.miners_for(make_job(on_trusted_miner=True))() == [trusted, other]
    assert crossval.miners_for(make_job(streaming=True, streaming_public_key="ab" * 32))() == [trusted, other]
