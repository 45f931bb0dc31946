"""Judging malicious-miner reports (validator/reports.py) against what the validator vouched for.

Everything is really signed: the miner's readiness, the client's streaming requests, the job
key's reply seals, and the client's report.
"""

from __future__ import annotations

import hashlib
from typing import Any

from protocol.keys import Keypair
from protocol.messages import StreamingEndpoint
from protocol.reports import MaliciousReport, sign_report
from protocol.requests import request_payload
from protocol.streaming import REQUEST_PURPOSE, Evidence, Readiness, request_digest, sign_readiness, sign_reply
from validator.reports import Verdict, judge_report

CLIENT, OTHER_CLIENT = Keypair.generate(), Keypair.generate()
STREAM_KEY, OTHER_STREAM_KEY = Keypair.generate(), Keypair.generate()
MINER, OTHER_MINER, TRUSTED = Keypair.generate(), Keypair.generate(), Keypair.generate()
JOB_KEY, OTHER_JOB_KEY, TRUSTED_JOB_KEY = Keypair.generate(), Keypair.generate(), Keypair.generate()
JOB_ID, CHECK_JOB_ID = "job-1", "job-check"


def readiness(job_id: str = JOB_ID, job_key: Keypair = JOB_KEY, port: int = 40001) -> Readiness:
    return Readiness(
        job_id=job_id, address="127.0.0.1", port=port, job_public_key=job_key.hotkey, cert_fingerprint="ab" * 32
    )


def endpoint(ready: Readiness | None = None, miner: Keypair = MINER) -> StreamingEndpoint:
    """The readiness the validator vouched for (and stored beside the job)."""
    ready = ready or readiness()
    return StreamingEndpoint(
        readiness=ready, cert_pem="PEM", miner_hotkey=miner.hotkey, miner_signature=sign_readiness(miner, ready)
    )


VOUCHED = endpoint()


def evidence(
    *,
    job_id: str = JOB_ID,
    job_key: Keypair = JOB_KEY,
    miner: Keypair = MINER,
    stream_key: Keypair = STREAM_KEY,
    path: str = "/predict",
    body: bytes = b"2+2",
    reply: bytes = b"5",
    nonce: str = "nonce0001",
    ready: Readiness | None = None,
) -> Evidence:
    ready = ready or readiness(job_id, job_key)
    request = request_payload("POST", path, "", hashlib.sha256(body).hexdigest(), "1700000000.000", nonce)
    seal = sign_reply(job_key, job_id, request_digest(request), 200, hashlib.sha256(reply).hexdigest())
    return Evidence(
        job_id=job_id,
        request=request,
        client_streaming_key=stream_key.hotkey,
        request_signature=stream_key.sign(REQUEST_PURPOSE, request),
        seal=seal,
        readiness=ready,
        miner_hotkey=miner.hotkey,
        miner_signature=sign_readiness(miner, ready),
        reply_body_sha256=seal.reply_digest,
    )


def trusted_evidence(**changes: Any) -> Evidence:
    """The trusted miner's reply to the same request, from its own run of the job."""
    fields: dict[str, Any] = {
        "job_id": CHECK_JOB_ID,
        "job_key": TRUSTED_JOB_KEY,
        "miner": TRUSTED,
        "reply": b"4",
        "nonce": "nonce0002",  # signed again for the other run: only method, path, query and body must match
    }
    fields.update(changes)
    return evidence(**fields)


def report(*pieces: Evidence, client: Keypair = CLIENT, trusted: Evidence | None = None) -> MaliciousReport:
    """The client's signed report on JOB_ID (one piece of evidence unless given)."""
    unsigned = MaliciousReport(
        job_id=JOB_ID,
        client_hotkey=client.hotkey,
        evidence=list(pieces) or [evidence()],
        trusted_evidence=trusted,
        details="2+2 is not 5",
        at=1_700_000_001.0,
    )
    return sign_report(client, unsigned)


def judge(malicious: MaliciousReport, **context: Any) -> Verdict:
    """The verdict for a job this validator drove for CLIENT on MINER, vouching for VOUCHED."""
    fields: dict[str, Any] = {
        "job_client": CLIENT.hotkey,
        "job_miner": MINER.hotkey,
        "streaming_key": STREAM_KEY.hotkey,
        "readiness": VOUCHED,
        "trusted_miners": frozenset({TRUSTED.hotkey}),
    }
    fields.update(context)
    return judge_report(malicious, **fields)


def refusal(verdict: Verdict) -> tuple[str, str]:
    assert not verdict.accepted and verdict.miner_hotkey is None
    return verdict.reason, verdict.message


# -- accepted --------------------------------------------------------------------------------------


def test_evidence_under_the_vouched_readiness_from_the_jobs_owner_blacklists_the_miner() -> None:
    verdict = judge(report(evidence(), evidence(body=b"3+3", reply=b"7", nonce="nonce0003")))
    assert verdict == Verdict(True, "blacklisted", "the evidence verified", MINER.hotkey)


def test_a_differing_reply_of_a_trusted_miner_to_the_same_request_backs_the_report() -> None:
    verdict = judge(report(evidence(), trusted=trusted_evidence()))
    assert verdict.accepted and verdict.miner_hotkey == MINER.hotkey


def test_the_streaming_key_is_compared_whatever_its_case() -> None:
    assert judge(report(), streaming_key=STREAM_KEY.hotkey.upper()).accepted


# -- refused ---------------------------------------------------------------------------------------


def test_a_job_this_validator_never_drove_is_refused() -> None:
    assert refusal(judge(report(), job_client=None)) == ("unknown_job", f"this validator did not drive job {JOB_ID}")


def test_a_client_reporting_someone_elses_job_is_refused() -> None:
    assert refusal(judge(report(client=OTHER_CLIENT))) == (
        "not_job_owner",
        "the reporting client does not own the job",
    )


def test_a_report_whose_signature_does_not_hold_is_refused() -> None:
    signed = report()
    altered = signed.model_copy(update={"details": "something else"})
    assert refusal(judge(altered))[0] == "bad_signature"
    unsigned = signed.model_copy(update={"signature": ""})
    assert refusal(judge(unsigned)) == ("missing_signature", "the report is not signed")


def test_tampered_evidence_is_refused_even_in_a_report_signed_afterwards() -> None:
    good = evidence()
    forged = good.model_copy(update={"seal": good.seal.model_copy(update={"status": 500})})
    reason, message = refusal(judge(report(forged)))
    assert reason == "bad_evidence" and message.startswith("evidence 0: ")


def test_evidence_about_another_job_is_refused() -> None:
    other = evidence(job_id="job-2", job_key=OTHER_JOB_KEY)
    assert refusal(judge(report(other))) == ("evidence_other_job", "evidence 0 is about job job-2")


def test_evidence_vouched_for_by_another_miner_is_refused() -> None:
    # OTHER_MINER really signed a readiness for this job and the reply verifies: it is just not the job's miner.
    other = evidence(miner=OTHER_MINER)
    assert refusal(judge(report(other))) == (
        "wrong_miner",
        "evidence 0 is vouched for by another miner than the job's",
    )


def test_evidence_under_another_job_key_than_the_vouched_one_is_refused() -> None:
    # The miner signed a second readiness with another job key (a second gateway the validator never saw).
    other = evidence(job_key=OTHER_JOB_KEY)
    assert refusal(judge(report(evidence(), other))) == (
        "wrong_readiness",
        "evidence 1 is not under the readiness the miner signed",
    )


def test_evidence_under_another_address_than_the_vouched_one_is_refused() -> None:
    other = evidence(ready=readiness(port=40002))
    assert refusal(judge(report(other)))[0] == "wrong_readiness"


def test_evidence_requested_with_another_client_key_is_refused() -> None:
    other = evidence(stream_key=OTHER_STREAM_KEY)
    assert refusal(judge(report(other))) == (
        "wrong_client_key",
        "evidence 0 was not requested with the job's client key",
    )


def test_a_job_without_streaming_readiness_has_nothing_to_hold_evidence_against() -> None:
    expected = ("not_streaming", "the job has no streaming readiness to hold the evidence against")
    assert refusal(judge(report(), readiness=None)) == expected
    assert refusal(judge(report(), streaming_key=None)) == expected


def test_a_comparison_from_an_untrusted_miner_is_refused() -> None:
    untrusted = trusted_evidence(miner=OTHER_MINER)
    assert refusal(judge(report(evidence(), trusted=untrusted))) == (
        "untrusted_comparison",
        "the comparison reply is not from a trusted miner",
    )
    assert refusal(judge(report(evidence(), trusted=trusted_evidence()), trusted_miners=frozenset()))[0] == (
        "untrusted_comparison"
    )


def test_a_comparison_for_another_request_is_refused() -> None:
    other_request = trusted_evidence(path="/other")
    assert refusal(judge(report(evidence(), trusted=other_request))) == (
        "no_matching_request",
        "no reported reply answers the same request as the trusted one",
    )
    other_body = trusted_evidence(body=b"2+3")
    assert refusal(judge(report(evidence(), trusted=other_body)))[0] == "no_matching_request"


def test_a_comparison_that_agrees_with_the_miner_is_refused() -> None:
    same_reply = trusted_evidence(reply=b"5")
    assert refusal(judge(report(evidence(), trusted=same_reply))) == (
        "replies_match",
        "the trusted miner's reply is the same as the reported one",
    )


def test_a_tampered_comparison_is_refused() -> None:
    good = trusted_evidence()
    forged = good.model_copy(update={"miner_signature": sign_readiness(OTHER_MINER, good.readiness)})
    reason, message = refusal(judge(report(evidence(), trusted=forged)))
    assert reason == "bad_trusted_evidence" and message.startswith("trusted evidence: ")


def test_a_refused_report_names_no_miner_to_blacklist() -> None:
    for verdict in [judge(report(), job_client=None), judge(report(evidence(miner=OTHER_MINER)))]:
        assert verdict.accepted is False and verdict.miner_hotkey is None
