"""Malicious-miner reports built from real signed evidence (protocol/reports.py)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pydantic import ValidationError

from protocol.errors import SignatureError
from protocol.keys import Keypair
from protocol.reports import REPORT_PURPOSE, MaliciousReport, check_report, sign_report
from protocol.requests import sign_request, verify_request
from protocol.streaming import (
    REQUEST_PURPOSE,
    Evidence,
    Readiness,
    request_digest,
    sign_readiness,
    sign_reply,
    verify_evidence,
)

CLIENT, OTHER_CLIENT = Keypair.generate(), Keypair.generate()  # the hotkeys that own jobs and sign reports
STREAMING_KEY = Keypair.generate()  # the client's per-job streaming key that signs requests
MINER, TRUSTED_MINER = Keypair.generate(), Keypair.generate()
JOB_KEYS = {"job-1": Keypair.generate(), "job-2": Keypair.generate(), "job-trusted": Keypair.generate()}


def make_evidence(
    job_id: str = "job-1",
    *,
    miner: Keypair = MINER,
    body: bytes = b"hello",
    reply: bytes = b"HELLO",
    status: int = 200,
) -> Evidence:
    """One reply really sealed by the job key, to a request really signed by the client's streaming key,
    under readiness really signed by the miner (as in tests/protocol/test_streaming.py)."""
    job = JOB_KEYS[job_id]
    readiness = Readiness(
        job_id=job_id, address="127.0.0.1", port=40001, job_public_key=job.hotkey, cert_fingerprint="ab" * 32
    )
    headers = sign_request(STREAMING_KEY, "POST", "/echo", "a=1", body, purpose=REQUEST_PURPOSE)
    request = verify_request(headers, "POST", "/echo", "a=1", body, purpose=REQUEST_PURPOSE).payload
    reply_digest = hashlib.sha256(reply).hexdigest()
    seal = sign_reply(job, job_id, request_digest(request), status, reply_digest)
    return Evidence(
        job_id=job_id,
        request=request,
        client_streaming_key=STREAMING_KEY.hotkey,
        request_signature=headers["X-Grid-Signature"],
        seal=seal,
        readiness=readiness,
        miner_hotkey=miner.hotkey,
        miner_signature=sign_readiness(miner, readiness),
        reply_body_sha256=reply_digest,
    )


def tamper(evidence: Evidence, **changes: Any) -> Evidence:
    """``evidence`` with fields replaced; dict values are merged into the nested model's fields."""
    data = evidence.model_dump(mode="json")
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return Evidence.model_validate(data)


def report(**changes: Any) -> MaliciousReport:
    fields: dict[str, Any] = {
        "job_id": "job-1",
        "client_hotkey": CLIENT.hotkey,
        "evidence": [make_evidence(), make_evidence(body=b"again", reply=b"AGAIN")],
        "details": "the miner answered HELLO to hello",
        "at": 1_700_000_000.5,
    }
    fields.update(changes)
    return MaliciousReport(**fields)


def signed_report(**changes: Any) -> MaliciousReport:
    return sign_report(CLIENT, report(**changes))


def refusal(report_: MaliciousReport) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        check_report(report_)
    return info.value


# -- reports that hold -----------------------------------------------------------------------------


def test_the_evidence_itself_verifies() -> None:
    for evidence in report().evidence:
        verify_evidence(evidence)


def test_a_signed_report_of_real_evidence_holds() -> None:
    unsigned = report()  # each call signs fresh requests, so keep this one
    signed = sign_report(CLIENT, unsigned)
    assert signed.signature == CLIENT.sign(REPORT_PURPOSE, unsigned.signed_fields())
    assert "signature" not in signed.signed_fields()
    check_report(signed)


def test_a_report_with_trusted_evidence_holds() -> None:
    trusted = make_evidence("job-trusted", miner=TRUSTED_MINER, reply=b"hello")
    check_report(signed_report(trusted_evidence=trusted))


def test_a_report_with_one_piece_of_evidence_and_no_details_holds() -> None:
    check_report(signed_report(evidence=[make_evidence()], details=""))


def test_a_report_survives_json_and_still_holds() -> None:
    signed = signed_report(trusted_evidence=make_evidence("job-trusted", miner=TRUSTED_MINER))
    again = MaliciousReport.model_validate_json(signed.model_dump_json())
    assert again == signed
    check_report(again)
    data = json.loads(signed.model_dump_json())
    data["evidence"] = [dict(reversed(list(item.items()))) for item in data["evidence"]]
    check_report(MaliciousReport.model_validate_json(json.dumps(data, indent=2)))


# -- the report's own signature --------------------------------------------------------------------


def test_an_unsigned_report_is_refused() -> None:
    assert refusal(report()).code == "missing_signature"


def test_a_client_signs_only_a_report_that_names_it() -> None:
    with pytest.raises(ValueError, match="client it names"):
        sign_report(OTHER_CLIENT, report())


def test_a_report_signed_by_another_client_is_refused() -> None:
    unsigned = report()
    forged = unsigned.model_copy(update={"signature": OTHER_CLIENT.sign(REPORT_PURPOSE, unsigned.signed_fields())})
    assert refusal(forged).code == "bad_signature"
    assert refusal(unsigned.model_copy(update={"signature": "00" * 64})).code == "bad_signature"


def test_a_report_relabelled_for_another_client_is_refused() -> None:
    signed = signed_report()
    assert refusal(signed.model_copy(update={"client_hotkey": OTHER_CLIENT.hotkey})).code == "bad_signature"


def test_a_report_signed_for_another_purpose_is_refused() -> None:
    unsigned = report()
    for purpose in ("scores", "receipt", "stream-request"):
        other = unsigned.model_copy(update={"signature": CLIENT.sign(purpose, unsigned.signed_fields())})
        assert refusal(other).code == "bad_signature"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"details": "the miner answered nothing"}, id="details"),
        pytest.param({"details": ""}, id="details-cleared"),
        pytest.param({"at": 1_700_000_001.0}, id="at"),
        pytest.param({"job_id": "job-2"}, id="job-id"),
        pytest.param({"evidence": [make_evidence()]}, id="evidence-removed"),
        pytest.param({"evidence": [make_evidence()] * 3}, id="evidence-added"),
        pytest.param({"trusted_evidence": make_evidence("job-trusted", miner=TRUSTED_MINER)}, id="trusted-added"),
    ],
)
def test_a_report_altered_after_signing_is_refused(change: dict[str, Any]) -> None:
    signed = signed_report()
    assert refusal(signed.model_copy(update=change)).code == "bad_signature"


def test_the_report_signature_is_checked_before_the_evidence() -> None:
    bad = tamper(make_evidence(), seal={"status": 500})
    assert refusal(report(evidence=[bad])).code == "missing_signature"
    signed = signed_report(evidence=[bad])
    assert refusal(signed.model_copy(update={"details": "changed"})).code == "bad_signature"


# -- the evidence ----------------------------------------------------------------------------------


def test_evidence_about_another_job_is_refused() -> None:
    """Real, verifying evidence, but about job-2 in a report about job-1."""
    other_job = make_evidence("job-2")
    verify_evidence(other_job)
    error = refusal(signed_report(evidence=[make_evidence(), other_job]))
    assert error.code == "evidence_other_job"
    assert "evidence 1" in error.message and "job-2" in error.message


def test_evidence_relabelled_for_this_job_is_bad_evidence() -> None:
    """job-2's evidence with its job id changed to job-1: the readiness and seal are for job-2."""
    relabelled = tamper(make_evidence("job-2"), job_id="job-1")
    error = refusal(signed_report(evidence=[relabelled]))
    assert error.code == "bad_evidence"
    assert error.message.startswith("evidence 0: ")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"seal": {"reply_digest": "ee" * 32}, "reply_body_sha256": "ee" * 32}, id="reply-digest"),
        pytest.param({"reply_body_sha256": "ee" * 32}, id="reply-body"),
        pytest.param({"seal": {"status": 500}}, id="reply-status"),
        pytest.param({"seal": {"complete": False}}, id="reply-complete"),
        pytest.param({"seal": {"error": "boom"}}, id="reply-error"),
        pytest.param({"seal": {"signature": "00" * 64}}, id="reply-signature"),
        pytest.param({"readiness": {"port": 40002}}, id="readiness-port"),
        pytest.param({"readiness": {"address": "10.0.0.9"}}, id="readiness-address"),
        pytest.param({"readiness": {"job_public_key": OTHER_CLIENT.hotkey}}, id="readiness-job-key"),
        pytest.param({"readiness": {"cert_fingerprint": "cd" * 32}}, id="readiness-cert"),
        pytest.param({"readiness": {"job_id": "job-2"}}, id="readiness-job"),
        pytest.param({"miner_signature": "00" * 64}, id="readiness-signature"),
        pytest.param({"miner_hotkey": TRUSTED_MINER.hotkey}, id="readiness-other-miner"),
        pytest.param({"request": {"path": "/other"}}, id="request-path"),
        pytest.param({"request": {"body_sha256": "11" * 32}}, id="request-body"),
        pytest.param({"request": {"method": "GET"}}, id="request-method"),
        pytest.param({"request_signature": "00" * 64}, id="request-signature"),
        pytest.param({"client_streaming_key": OTHER_CLIENT.hotkey}, id="request-other-key"),
    ],
)
def test_tampered_evidence_is_bad_evidence(change: dict[str, Any]) -> None:
    """The client signs the report over the tampered evidence, so only the evidence can fail."""
    bad = tamper(make_evidence(body=b"x"), **change)
    error = refusal(signed_report(evidence=[make_evidence(), bad]))
    assert error.code == "bad_evidence"
    assert error.message.startswith("evidence 1: ")


def test_a_reply_to_another_request_is_bad_evidence() -> None:
    """Both halves are genuine, but the seal is for a different request than the one shown."""
    first, second = make_evidence(body=b"one"), make_evidence(body=b"two")
    spliced = tamper(first, request=second.request, request_signature=second.request_signature)
    error = refusal(signed_report(evidence=[spliced]))
    assert error.code == "bad_evidence"


def test_a_seal_from_another_job_is_bad_evidence() -> None:
    """job-2's genuine seal put into job-1's evidence does not verify under job-1's key."""
    mine, theirs = make_evidence(), make_evidence("job-2")
    spliced = tamper(mine, seal=theirs.seal.model_dump(mode="json"))
    assert refusal(signed_report(evidence=[spliced])).code == "bad_evidence"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"seal": {"reply_digest": "ee" * 32}, "reply_body_sha256": "ee" * 32}, id="reply-digest"),
        pytest.param({"readiness": {"port": 1}}, id="readiness"),
        pytest.param({"request": {"query": "a=2"}}, id="request"),
    ],
)
def test_bad_trusted_evidence_is_refused(change: dict[str, Any]) -> None:
    trusted = tamper(make_evidence("job-trusted", miner=TRUSTED_MINER), **change)
    error = refusal(signed_report(trusted_evidence=trusted))
    assert error.code == "bad_trusted_evidence"
    assert error.message.startswith("trusted evidence: ")


def test_the_reported_evidence_is_checked_before_the_trusted_evidence() -> None:
    bad = tamper(make_evidence(), seal={"status": 500})
    bad_trusted = tamper(make_evidence("job-trusted", miner=TRUSTED_MINER), seal={"status": 500})
    assert refusal(signed_report(evidence=[bad], trusted_evidence=bad_trusted)).code == "bad_evidence"


# -- limits ----------------------------------------------------------------------------------------


def test_a_report_needs_evidence() -> None:
    with pytest.raises(ValidationError):
        report(evidence=[])
    with pytest.raises(ValidationError):
        MaliciousReport.model_validate({**report().model_dump(mode="json"), "evidence": []})


def test_a_report_holds_at_most_a_hundred_pieces_of_evidence() -> None:
    evidence = make_evidence()
    check_report(signed_report(evidence=[evidence] * 100))
    with pytest.raises(ValidationError):
        report(evidence=[evidence] * 101)


def test_details_are_limited() -> None:
    check_report(signed_report(details="d" * 4000))
    with pytest.raises(ValidationError):
        report(details="d" * 4001)


@pytest.mark.parametrize(
    "change",
    [
        {"job_id": ""},
        {"job_id": "j" * 65},
        {"client_hotkey": "AB" * 32},
        {"client_hotkey": "ab" * 31},
        {"signature": "ab" * 63},
        {"signature": "AB" * 64},
        {"at": "yesterday"},
        {"evidence": [{"job_id": "job-1"}]},
        {"trusted_evidence": {"job_id": "job-1"}},
        {"verdict": "guilty"},
    ],
)
def test_a_report_refuses_malformed_fields(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        report(**change)


def test_a_report_is_frozen() -> None:
    signed = signed_report()
    with pytest.raises(ValidationError):
        signed.details = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_report_with_a_non_finite_time_is_refused_as_a_model_or_signature(value: float) -> None:
    data = json.loads(signed_report().model_dump_json())
    data["at"] = value
    try:
        received = MaliciousReport.model_validate_json(json.dumps(data))  # json.dumps writes NaN / Infinity
    except ValidationError:
        return
    with pytest.raises(SignatureError):
        check_report(received)
