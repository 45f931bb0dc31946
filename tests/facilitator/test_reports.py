"""Malicious-miner reports on the facilitator (facilitator/reports.py, api/reports.py, consumers.py).

Reports are real signed requests carrying really signed evidence; validators are played by hand
over the real ``ws/validator/`` routing, so forwarding, redelivery and outcomes cross the same
channel layer as in production.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.http import HttpResponse
from django.utils import timezone

from facilitator.models import Job, MaliciousReportRecord
from protocol.keys import Keypair
from protocol.messages import Error, ReportMalicious, ReportOutcome
from protocol.reports import MaliciousReport, sign_report
from protocol.requests import sign_request, verify_request
from protocol.streaming import REQUEST_PURPOSE, Evidence, Readiness, request_digest, sign_readiness, sign_reply
from tests.ws import Peer

from .conftest import CLIENT, OTHER_CLIENT, OTHER_VALIDATOR, VALIDATOR, Dial, SignedApi, assert_error, create_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("validators_allowed")]

MINER = Keypair.generate()
STREAMING_KEY = Keypair.generate()


def make_evidence(job_id: str, reply: bytes = b"HELLO", body: bytes = b"hello") -> Evidence:
    """One reply sealed by a job key the miner vouched for, to a request the client's streaming key signed."""
    job_key = Keypair.generate()
    readiness = Readiness(
        job_id=job_id, address="127.0.0.1", port=40001, job_public_key=job_key.hotkey, cert_fingerprint="ab" * 32
    )
    headers = sign_request(STREAMING_KEY, "POST", "/echo", "", body, purpose=REQUEST_PURPOSE)
    request = verify_request(headers, "POST", "/echo", "", body, purpose=REQUEST_PURPOSE).payload
    digest = hashlib.sha256(reply).hexdigest()
    return Evidence(
        job_id=job_id,
        request=request,
        client_streaming_key=STREAMING_KEY.hotkey,
        request_signature=headers["X-Grid-Signature"],
        seal=sign_reply(job_key, job_id, request_digest(request), 200, digest),
        readiness=readiness,
        miner_hotkey=MINER.hotkey,
        miner_signature=sign_readiness(MINER, readiness),
        reply_body_sha256=digest,
    )


def make_report(job_id: str, keypair: Keypair = CLIENT, **changes: Any) -> MaliciousReport:
    fields: dict[str, Any] = {
        "job_id": job_id,
        "client_hotkey": keypair.hotkey,
        "evidence": [make_evidence(job_id)],
        "details": "answered HELLO to hello",
        "at": time.time(),
    }
    fields.update(changes)
    return sign_report(keypair, MaliciousReport(**fields))


def driven_job(keypair: Keypair = CLIENT, validator: Keypair | None = VALIDATOR) -> str:
    """A job of ``keypair``'s that ``validator`` took and drives (none: not yet handed to any)."""
    job = create_job(keypair)
    if validator is not None:
        Job.objects.filter(id=job.id).update(
            validator_hotkey=validator.hotkey, dispatched_at=timezone.now(), delivered_at=timezone.now()
        )
    return str(job.id)


def post(job_id: str, body: Any, keypair: Keypair = CLIENT) -> HttpResponse:
    if isinstance(body, MaliciousReport):
        body = body.model_dump(mode="json")
    return SignedApi(keypair).post(f"/jobs/{job_id}/reports", body)


def get(report_id: str, keypair: Keypair = CLIENT) -> HttpResponse:
    return SignedApi(keypair).get(f"/reports/{report_id}")


adriven_job = database_sync_to_async(driven_job)
apost = database_sync_to_async(post)
aget = database_sync_to_async(get)


async def settled(validator: Peer) -> Peer:
    """Wait until the consumer is done with what it sends on connect (frames are handled in order:
    the answer to a bad frame comes only after ``authenticated()`` finished)."""
    await validator.send("sync")
    message = await validator.receive()
    assert isinstance(message, Error) and message.code == "bad_json", message
    return validator


async def online(dial_validator: Dial, keypair: Keypair = VALIDATOR) -> Peer:
    return await settled(await dial_validator(keypair))


async def forwarded(validator: Peer) -> ReportMalicious:
    message = await validator.receive()
    assert isinstance(message, ReportMalicious), message
    return message


def outcome(report_id: str, accepted: bool = True, **changes: Any) -> ReportOutcome:
    fields: dict[str, Any] = {
        "report_id": report_id,
        "accepted": accepted,
        "reason": "blacklisted" if accepted else "wrong_readiness",
        "message": "the evidence verified" if accepted else "evidence 0 is not under the readiness the miner signed",
        "miner_hotkey": MINER.hotkey if accepted else None,
        "blacklisted_until": 1_900_000_000.0 if accepted else None,
    }
    fields.update(changes)
    return ReportOutcome(**fields)


# -- accepted and forwarded ------------------------------------------------------------------------


async def test_a_valid_report_is_stored_pending_and_forwarded_to_the_jobs_validator(dial_validator: Dial) -> None:
    validator = await online(dial_validator)
    other = await online(dial_validator, OTHER_VALIDATOR)
    job_id = await adriven_job()
    report = make_report(job_id)
    response = await apost(job_id, report)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["job_id"] == job_id
    assert body["reason"] is None and body["blacklisted_until"] is None
    message = await forwarded(validator)
    assert message.report_id == body["report_id"]
    assert message.report == report
    await other.expect_nothing()
    record = await MaliciousReportRecord.objects.aget(id=body["report_id"])
    assert (record.status, record.client_hotkey, record.validator_hotkey) == (
        "pending",
        CLIENT.hotkey,
        VALIDATOR.hotkey,
    )
    assert record.forwarded_at is not None
    assert MaliciousReport.model_validate(record.report) == report


async def test_the_same_signed_report_sent_again_is_the_same_report(dial_validator: Dial) -> None:
    validator = await online(dial_validator)
    job_id = await adriven_job()
    report = make_report(job_id)
    first, again = await apost(job_id, report), await apost(job_id, report)
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["report_id"] == again.json()["report_id"]
    assert await MaliciousReportRecord.objects.acount() == 1
    await forwarded(validator)
    await validator.expect_nothing()


async def test_a_report_made_while_the_validator_is_away_is_sent_when_it_connects(dial_validator: Dial) -> None:
    job_id = await adriven_job()
    response = await apost(job_id, make_report(job_id))
    assert response.status_code == 202, response.content
    record = await MaliciousReportRecord.objects.aget(id=response.json()["report_id"])
    assert record.forwarded_at is None
    validator = await dial_validator(VALIDATOR)
    assert (await forwarded(validator)).report_id == str(record.id)
    await settled(validator)


async def test_a_pending_report_is_sent_again_on_reconnect_until_decided(dial_validator: Dial) -> None:
    validator = await online(dial_validator)
    job_id = await adriven_job()
    report_id = (await apost(job_id, make_report(job_id))).json()["report_id"]
    await forwarded(validator)
    await validator.disconnect()

    again = await dial_validator(VALIDATOR)
    assert (await forwarded(again)).report_id == report_id
    await again.send(outcome(report_id))
    await again.expect_nothing()
    await again.disconnect()

    third = await online(dial_validator)
    await third.expect_nothing()


# -- outcomes --------------------------------------------------------------------------------------


async def test_an_accepted_outcome_is_recorded_and_shown_to_the_client(dial_validator: Dial) -> None:
    validator = await online(dial_validator)
    job_id = await adriven_job()
    report_id = (await apost(job_id, make_report(job_id))).json()["report_id"]
    await forwarded(validator)
    await validator.send(outcome(report_id))
    await validator.expect_nothing()
    response = await aget(report_id)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "accepted"
    assert (body["reason"], body["message"]) == ("blacklisted", "the evidence verified")
    assert (body["miner_hotkey"], body["blacklisted_until"]) == (MINER.hotkey, 1_900_000_000.0)
    assert body["decided_at"] is not None


async def test_a_refused_outcome_is_recorded_with_its_reason(dial_validator: Dial) -> None:
    validator = await online(dial_validator)
    job_id = await adriven_job()
    report_id = (await apost(job_id, make_report(job_id))).json()["report_id"]
    await forwarded(validator)
    await validator.send(outcome(report_id, accepted=False))
    await validator.expect_nothing()
    body = (await aget(report_id)).json()
    assert (body["status"], body["reason"]) == ("refused", "wrong_readiness")
    assert body["miner_hotkey"] is None and body["blacklisted_until"] is None


async def test_a_second_outcome_for_a_decided_report_is_ignored(dial_validator: Dial) -> None:
    validator = await online(dial_validator)
    job_id = await adriven_job()
    report_id = (await apost(job_id, make_report(job_id))).json()["report_id"]
    await forwarded(validator)
    await validator.send(outcome(report_id, accepted=False))
    await validator.send(outcome(report_id, accepted=True))
    await validator.expect_nothing()
    body = (await aget(report_id)).json()
    assert (body["status"], body["reason"], body["blacklisted_until"]) == ("refused", "wrong_readiness", None)


async def test_an_outcome_from_another_validator_is_ignored(dial_validator: Dial) -> None:
    validator = await online(dial_validator)
    intruder = await online(dial_validator, OTHER_VALIDATOR)
    job_id = await adriven_job()
    report_id = (await apost(job_id, make_report(job_id))).json()["report_id"]
    await forwarded(validator)
    await intruder.send(outcome(report_id))
    await intruder.expect_nothing()
    record = await MaliciousReportRecord.objects.aget(id=report_id)
    assert (record.status, record.blacklisted_until, record.decided_at) == ("pending", None, None)


@pytest.mark.parametrize("report_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_an_outcome_for_an_unknown_report_changes_nothing(dial_validator: Dial, report_id: str) -> None:
    validator = await online(dial_validator)
    await validator.send(outcome(report_id))
    await validator.expect_nothing()
    assert not await MaliciousReportRecord.objects.aexists()


# -- refusals: each answered with a reason, none stores anything -----------------------------------


async def refused(response: HttpResponse, status: int, code: str, message: str | None = None) -> dict:
    body = assert_error(response, status, code, message)
    assert not await MaliciousReportRecord.objects.aexists()
    return body


async def test_a_body_that_is_not_a_report_is_refused(dial_validator: Dial) -> None:
    job_id = await adriven_job()
    data = make_report(job_id).model_dump(mode="json")
    del data["evidence"]
    body = await refused(await apost(job_id, data), 400, "invalid_request")
    assert [error["field"] for error in body["errors"]] == ["evidence"]


async def test_a_report_with_no_evidence_is_refused(dial_validator: Dial) -> None:
    job_id = await adriven_job()
    data = make_report(job_id).model_dump(mode="json")
    data["evidence"] = []
    await refused(await apost(job_id, data), 400, "invalid_request")


async def test_a_report_about_another_job_than_the_url_is_refused() -> None:
    job_id, other_id = await adriven_job(), await adriven_job()
    await refused(
        await apost(other_id, make_report(job_id)),
        400,
        "job_mismatch",
        f"the report is about job {job_id}, not {other_id}",
    )


async def test_a_report_signed_for_another_client_than_the_request_is_refused() -> None:
    job_id = await adriven_job()
    await refused(
        await apost(job_id, make_report(job_id), keypair=OTHER_CLIENT),
        403,
        "wrong_client",
        f"the report is signed for client {CLIENT.hotkey}, the request by {OTHER_CLIENT.hotkey}",
    )


async def test_a_report_about_another_clients_job_is_refused_like_an_unknown_job() -> None:
    """Whether a job exists is not revealed: another client's job and no job get the same answer."""
    job_id = await adriven_job(CLIENT)
    others = await refused(
        await apost(job_id, make_report(job_id, OTHER_CLIENT), keypair=OTHER_CLIENT), 404, "not_found"
    )
    assert others["message"] == f"no job {job_id}"
    unknown = str(uuid.uuid4())
    none = await refused(
        await apost(unknown, make_report(unknown, OTHER_CLIENT), keypair=OTHER_CLIENT), 404, "not_found"
    )
    assert none["message"] == f"no job {unknown}"


async def test_a_report_about_a_job_no_validator_has_yet_is_refused() -> None:
    job_id = await adriven_job(validator=None)
    await refused(
        await apost(job_id, make_report(job_id)),
        409,
        "no_validator",
        f"job {job_id} has no validator yet: nothing to report",
    )


def _tampered_digest(job_id: str) -> MaliciousReport:
    evidence = make_evidence(job_id).model_dump(mode="json")
    evidence["seal"]["reply_digest"] = hashlib.sha256(b"something else").hexdigest()
    evidence["reply_body_sha256"] = evidence["seal"]["reply_digest"]
    return make_report(job_id, evidence=[Evidence.model_validate(evidence)])


def _unsigned(job_id: str) -> MaliciousReport:
    return make_report(job_id).model_copy(update={"signature": ""})


def _altered_after_signing(job_id: str) -> MaliciousReport:
    return make_report(job_id).model_copy(update={"details": "something else"})


def _evidence_of_another_job(job_id: str) -> MaliciousReport:
    return make_report(job_id, evidence=[make_evidence(str(uuid.uuid4()))])


def _bad_trusted_evidence(job_id: str) -> MaliciousReport:
    trusted = make_evidence(job_id).model_dump(mode="json")
    trusted["miner_signature"] = "00" * 64
    return make_report(job_id, trusted_evidence=Evidence.model_validate(trusted))


@pytest.mark.parametrize(
    ("build", "code", "message"),
    [
        (_tampered_digest, "bad_evidence", "report refused: evidence 0: signature does not verify"),
        (_unsigned, "missing_signature", "report refused: the report is not signed"),
        (_altered_after_signing, "bad_signature", "report refused: signature does not verify"),
        (_evidence_of_another_job, "evidence_other_job", None),
        (_bad_trusted_evidence, "bad_trusted_evidence", "report refused: trusted evidence: signature does not verify"),
    ],
)
async def test_a_report_whose_signatures_do_not_verify_is_refused_and_not_forwarded(
    dial_validator: Dial, build: Any, code: str, message: str | None
) -> None:
    validator = await online(dial_validator)
    job_id = await adriven_job()
    await refused(await apost(job_id, build(job_id)), 422, code, message)
    await validator.expect_nothing()


async def test_an_unsigned_request_is_refused() -> None:
    job_id = await adriven_job()
    client = SignedApi(CLIENT)
    body = make_report(job_id).model_dump_json().encode()
    response = await database_sync_to_async(client.send)("POST", f"/api/v1/jobs/{job_id}/reports", body)
    await refused(response, 401, "missing_signature")


# -- reading a report ------------------------------------------------------------------------------


async def test_a_report_is_visible_only_to_its_client(dial_validator: Dial) -> None:
    job_id = await adriven_job()
    report_id = (await apost(job_id, make_report(job_id))).json()["report_id"]
    assert (await aget(report_id)).json()["status"] == "pending"
    assert_error(await aget(report_id, OTHER_CLIENT), 404, "not_found", f"no report {report_id}")


def listed(job_id: str, keypair: Keypair = CLIENT) -> HttpResponse:
    return SignedApi(keypair).get(f"/jobs/{job_id}/reports")


alisted = database_sync_to_async(listed)


async def test_a_jobs_reports_are_listed_oldest_first_to_its_client_only(dial_validator: Dial) -> None:
    job_id, other_job = await adriven_job(), await adriven_job()
    assert (await alisted(job_id)).json() == {"reports": []}
    first = (await apost(job_id, make_report(job_id))).json()
    second = (await apost(job_id, make_report(job_id, evidence=[make_evidence(job_id, b"OTHER")]))).json()
    await apost(other_job, make_report(other_job))
    answer = await alisted(job_id)
    assert answer.status_code == 200
    assert [r["report_id"] for r in answer.json()["reports"]] == [first["report_id"], second["report_id"]]
    assert answer.json()["reports"][0] == (await aget(first["report_id"])).json()
    assert_error(await alisted(job_id, OTHER_CLIENT), 404, "not_found", f"no job {job_id}")
    assert_error(await alisted("not-a-uuid"), 404, "not_found", "no job not-a-uuid")


@pytest.mark.parametrize("report_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_an_unknown_report_is_not_found(report_id: str) -> None:
    assert_error(await aget(report_id), 404, "not_found", f"no report {report_id}")
