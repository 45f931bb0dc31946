"""``Client.report_malicious`` / ``get_report`` and ``Report.wait`` against a real facilitator on loopback.

No validator runs: a test marks the job as taken by one and records its outcome the way the
facilitator's validator connection would (``facilitator.reports.apply_outcome``).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from facilitator import reports
from facilitator.models import Job, MaliciousReportRecord
from facilitator_sdk import ApiError, AsyncClient, Client, JobSpec, NotFoundError, Report, ReportTimeoutError
from protocol.keys import Keypair
from protocol.messages import ReportOutcome
from protocol.reports import MaliciousReport, check_report
from tests.facilitator.test_reports import MINER, make_evidence

pytestmark = pytest.mark.django_db(transaction=True)

VALIDATOR = Keypair.generate()


def taken_job(client: Client) -> str:
    job = client.create_job(JobSpec(command=["echo", "hi"]))
    Job.objects.filter(id=job.job_id).update(validator_hotkey=VALIDATOR.hotkey)
    return job.job_id


def decide(report_id: str, accepted: bool = True) -> None:
    outcome = ReportOutcome(
        report_id=report_id,
        accepted=accepted,
        reason="blacklisted" if accepted else "wrong_readiness",
        message="the evidence verified" if accepted else "not under the readiness the miner signed",
        miner_hotkey=MINER.hotkey if accepted else None,
        blacklisted_until=1_900_000_000.0 if accepted else None,
    )
    assert reports.apply_outcome(VALIDATOR.hotkey, outcome)


def test_a_report_is_signed_sent_and_pending(live_url: str) -> None:
    with Client(live_url, Keypair.generate()) as client:
        job_id = taken_job(client)
        evidence = [make_evidence(job_id), make_evidence(job_id, reply=b"AGAIN", body=b"again")]
        report = client.report_malicious(job_id, evidence, "answered HELLO to hello")
    assert isinstance(report, Report)
    assert (report.status, report.accepted, report.done) == ("pending", None, False)
    assert repr(report) == f"<Report {report.report_id} [pending]>"
    stored = MaliciousReport.model_validate(MaliciousReportRecord.objects.get(id=report.report_id).report)
    check_report(stored)
    assert stored.client_hotkey == client.keypair.hotkey
    assert (stored.evidence, stored.details) == (evidence, "answered HELLO to hello")


def test_a_job_object_and_a_single_piece_of_evidence_are_accepted(live_url: str) -> None:
    with Client(live_url, Keypair.generate()) as client:
        job = client.get_job(taken_job(client))
        evidence = make_evidence(job.job_id)
        report = client.report_malicious(job, evidence)
    stored = MaliciousReportRecord.objects.get(id=report.report_id)
    assert stored.report["evidence"] == [evidence.model_dump(mode="json")]


def test_wait_returns_once_the_validator_decided(live_url: str) -> None:
    with Client(live_url, Keypair.generate()) as client:
        job_id = taken_job(client)
        report = client.report_malicious(job_id, make_evidence(job_id))
        decider = threading.Thread(target=decide, args=(report.report_id,))
        decider.start()
        try:
            assert report.wait(timeout=30) is report
        finally:
            decider.join()
    assert (report.status, report.accepted, report.reason) == ("accepted", True, "blacklisted")
    assert (report.miner_hotkey, report.blacklisted_until) == (MINER.hotkey, 1_900_000_000.0)


def test_get_report_shows_a_refusal_and_its_reason(live_url: str) -> None:
    with Client(live_url, Keypair.generate()) as client:
        job_id = taken_job(client)
        report_id = client.report_malicious(job_id, make_evidence(job_id)).report_id
        decide(report_id, accepted=False)
        report = client.get_report(report_id)
        listed = client.list_reports(job_id)
    assert (report.accepted, report.reason, report.blacklisted_until) == (False, "wrong_readiness", None)
    assert [(r.report_id, r.accepted, r.reason) for r in listed] == [(report_id, False, "wrong_readiness")]


def test_wait_gives_up_after_its_timeout(live_url: str) -> None:
    with Client(live_url, Keypair.generate()) as client:
        job_id = taken_job(client)
        report = client.report_malicious(job_id, make_evidence(job_id))
        with pytest.raises(ReportTimeoutError, match=f"report {report.report_id} still pending after 0s"):
            report.wait(timeout=0)


def test_tampered_evidence_is_refused_with_the_reason(live_url: str) -> None:
    with Client(live_url, Keypair.generate()) as client:
        job_id = taken_job(client)
        evidence = make_evidence(job_id)
        tampered = evidence.model_copy(update={"seal": evidence.seal.model_copy(update={"status": 500})})
        with pytest.raises(ApiError) as caught:
            client.report_malicious(job_id, tampered)
    assert (caught.value.status, caught.value.code) == (422, "bad_evidence")
    assert not MaliciousReportRecord.objects.exists()


def test_a_report_on_another_clients_job_is_not_found(live_url: str) -> None:
    with Client(live_url, Keypair.generate()) as owner, Client(live_url, Keypair.generate()) as other:
        job_id = taken_job(owner)
        with pytest.raises(NotFoundError, match=f"no job {job_id}"):
            other.report_malicious(job_id, make_evidence(job_id))
        report_id = owner.report_malicious(job_id, make_evidence(job_id)).report_id
        with pytest.raises(NotFoundError):
            other.get_report(report_id)


@pytest.mark.parametrize(
    ("evidence", "error", "message"),
    [
        ([], ValueError, "a report needs at least one piece of evidence"),
        (["not evidence"], TypeError, "evidence must be Evidence"),
        ({"job_id": "x"}, TypeError, "evidence must be Evidence or a list of Evidence, not dict"),
    ],
)
def test_what_is_not_evidence_is_refused_before_sending(
    live_url: str, evidence: object, error: type[Exception], message: str
) -> None:
    with Client(live_url, Keypair.generate()) as client:
        job_id = taken_job(client)
        with pytest.raises(error, match=message):
            client.report_malicious(job_id, evidence)
    assert not MaliciousReportRecord.objects.exists()


def test_the_async_client_reports_and_waits(live_url: str) -> None:
    keypair = Keypair.generate()
    with Client(live_url, keypair) as client:
        job_id = taken_job(client)

    async def scenario() -> tuple[str, bool | None]:
        async with AsyncClient(live_url, keypair) as client:
            report = await client.report_malicious(job_id, [make_evidence(job_id)])
            await asyncio.to_thread(decide, report.report_id)
            await report.wait(timeout=30)
            fetched = await client.get_report(report.report_id)
            [listed] = await client.list_reports(job_id)
            return report.status, fetched.accepted, listed.report_id == report.report_id

    assert asyncio.run(scenario()) == ("accepted", True, True)
