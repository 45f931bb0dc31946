"""What happens to a job on the facilitator (facilitator/jobs.py), below the API and the consumers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from facilitator import jobs
from facilitator.models import Job, JobEvent, ValidatorPresence
from protocol.errors import SignatureError
from protocol.messages import JobFailure, JobNew, JobResult, JobStatusUpdate
from protocol.spec import SpecError

from .conftest import CLIENT, OTHER_CLIENT, OTHER_VALIDATOR, VALIDATOR, create_job, sign_raw_job, signed_job

pytestmark = pytest.mark.django_db


def status(job: Job, value: str, attempt: int = 1, **fields: Any) -> JobStatusUpdate:
    return JobStatusUpdate(job_id=str(job.id), status=value, attempt=attempt, at=time.time(), **fields)


def assigned_job(validator: str = VALIDATOR.hotkey) -> Job:
    job = create_job()
    Job.objects.filter(id=job.id).update(validator_hotkey=validator)
    return Job.objects.get(id=job.id)


def history(job: Job) -> list[tuple[int, str]]:
    return list(JobEvent.objects.filter(job=job).values_list("attempt", "status"))


def receive(channel: str) -> dict[str, Any]:
    return async_to_sync(get_channel_layer().receive)(channel)


def test_is_job_id_accepts_uuids_only() -> None:
    assert jobs.is_job_id("0b6f7a52-6a54-4c3e-9d4c-3a1c2f1d9e10")
    assert not jobs.is_job_id("0b6f7a52")
    assert not jobs.is_job_id("")


def test_create_job_records_the_sent_event() -> None:
    body = signed_job()
    job, created = jobs.create_job(CLIENT.hotkey, body["job_id"], body["spec"], body["signature"])
    assert created and job.status == "sent" and job.attempt == 1
    assert history(job) == [(1, "sent")]


def test_create_job_twice_returns_the_stored_job() -> None:
    body = signed_job()
    first, _ = jobs.create_job(CLIENT.hotkey, body["job_id"], body["spec"], body["signature"])
    again, created = jobs.create_job(CLIENT.hotkey, body["job_id"], body["spec"], body["signature"])
    assert not created and str(again.pk) == str(first.pk)
    assert history(first) == [(1, "sent")]


def test_create_job_refuses_an_invalid_spec_before_anything_is_stored() -> None:
    body = sign_raw_job({"command": ["true"], "limits": {"memory_mb": 1}})
    with pytest.raises(SpecError) as info:
        jobs.create_job(CLIENT.hotkey, body["job_id"], body["spec"], body["signature"])
    assert info.value.errors == [
        {"field": "limits.memory_mb", "message": "Input should be greater than or equal to 16"}
    ]
    assert not Job.objects.exists()


def test_create_job_refuses_a_job_signed_by_someone_else() -> None:
    body = signed_job(OTHER_CLIENT)
    with pytest.raises(SignatureError):
        jobs.create_job(CLIENT.hotkey, body["job_id"], body["spec"], body["signature"])
    assert not Job.objects.exists()


def test_create_job_refuses_a_taken_id() -> None:
    body = signed_job()
    jobs.create_job(CLIENT.hotkey, body["job_id"], body["spec"], body["signature"])
    other = signed_job(job_id=body["job_id"], command=["false"])
    with pytest.raises(jobs.JobConflict, match=f"job id {body['job_id']} is already taken"):
        jobs.create_job(CLIENT.hotkey, other["job_id"], other["spec"], other["signature"])


def test_dispatch_without_a_connected_validator_leaves_the_job_waiting() -> None:
    job = create_job()
    assert jobs.dispatch(job) is False
    job.refresh_from_db()
    assert job.validator_hotkey == "" and job.dispatched_at is None


def test_dispatch_assigns_a_connected_validator_and_notifies_its_connection() -> None:
    channel = async_to_sync(get_channel_layer().new_channel)()
    ValidatorPresence.objects.create(hotkey=VALIDATOR.hotkey, channel_name=channel)
    job = create_job()
    assert jobs.dispatch(job) is True
    job.refresh_from_db()
    assert job.validator_hotkey == VALIDATOR.hotkey and job.dispatched_at is not None
    event = receive(channel)
    assert (event["type"], event["job_id"]) == ("job.dispatch", str(job.id))
    sent, expected = JobNew.model_validate_json(event["frame"]), jobs.job_new_message(job)
    # The store links are signed at each call, so compare them by key; everything else exactly.
    assert sent.model_copy(update={"context": None}) == expected.model_copy(update={"context": None})
    assert sent.context.links.stdout.key == expected.context.links.stdout.key == f"jobs/{job.id}/logs/stdout"


def test_dispatch_of_a_job_bound_to_an_absent_validator_waits_for_it() -> None:
    ValidatorPresence.objects.create(hotkey=OTHER_VALIDATOR.hotkey, channel_name="nobody-listens")
    job = assigned_job(VALIDATOR.hotkey)
    assert jobs.dispatch(job) is False
    assert Job.objects.get(id=job.id).validator_hotkey == VALIDATOR.hotkey


def test_job_new_message_carries_the_spec_and_signature_unchanged() -> None:
    job = create_job(env={"A": "1"})
    message = jobs.job_new_message(job)
    assert message.job_id == str(job.id)
    assert message.spec == {"command": ["echo", "hi"], "env": {"A": "1"}}
    assert (message.client_hotkey, message.client_signature) == (CLIENT.hotkey, job.client_signature)


def test_apply_status_moves_the_job_forward_and_records_it() -> None:
    job = assigned_job()
    assert jobs.apply_status(VALIDATOR.hotkey, status(job, "accepted", miner="m" * 64)) is True
    job.refresh_from_db()
    assert (job.status, job.miner_hotkey) == ("accepted", "m" * 64)
    assert history(job) == [(1, "sent"), (1, "accepted")]


def test_apply_status_twice_records_one_event() -> None:
    job = assigned_job()
    assert jobs.apply_status(VALIDATOR.hotkey, status(job, "accepted")) is True
    assert jobs.apply_status(VALIDATOR.hotkey, status(job, "accepted")) is False
    assert history(job) == [(1, "sent"), (1, "accepted")]


def test_apply_status_from_a_validator_the_job_is_not_assigned_to_is_ignored() -> None:
    job = assigned_job(VALIDATOR.hotkey)
    assert jobs.apply_status(OTHER_VALIDATOR.hotkey, status(job, "completed")) is False
    job.refresh_from_db()
    assert job.status == "sent" and history(job) == [(1, "sent")]


def test_apply_status_never_moves_a_job_backwards_but_keeps_the_history() -> None:
    job = assigned_job()
    jobs.apply_status(VALIDATOR.hotkey, status(job, "executor_ready"))
    assert jobs.apply_status(VALIDATOR.hotkey, status(job, "accepted")) is True
    job.refresh_from_db()
    assert job.status == "executor_ready"
    assert history(job) == [(1, "sent"), (1, "executor_ready"), (1, "accepted")]


def test_apply_status_stores_the_result_of_a_completed_job() -> None:
    job = assigned_job()
    result = JobResult(exit_code=0, stdout="hi\n")
    jobs.apply_status(VALIDATOR.hotkey, status(job, "completed", result=result))
    job.refresh_from_db()
    assert job.status == "completed" and job.is_terminal
    assert job.result == result.model_dump(mode="json")


def test_apply_status_after_the_end_changes_nothing() -> None:
    job = assigned_job()
    jobs.apply_status(VALIDATOR.hotkey, status(job, "completed", result=JobResult(exit_code=0)))
    failure = JobFailure(reason="timeout", message="late")
    assert jobs.apply_status(VALIDATOR.hotkey, status(job, "failed", failure=failure)) is False
    job.refresh_from_db()
    assert job.status == "completed" and job.failure is None
    assert history(job) == [(1, "sent"), (1, "completed")]


def test_a_retried_infra_failure_is_history_and_the_next_attempt_goes_on() -> None:
    job = assigned_job()
    failure = JobFailure(reason="executor_disconnected", message="gone")
    retrying = status(job, "infra_failed", failure=failure, detail={"retrying": True})
    assert jobs.apply_status(VALIDATOR.hotkey, retrying) is True
    job.refresh_from_db()
    assert (job.status, job.attempt) == ("sent", 2)
    jobs.apply_status(VALIDATOR.hotkey, status(job, "accepted", attempt=2))
    job.refresh_from_db()
    assert (job.status, job.attempt) == ("accepted", 2)
    assert history(job) == [(1, "sent"), (1, "infra_failed"), (2, "accepted")]


def test_a_late_status_of_an_earlier_attempt_does_not_move_the_job() -> None:
    job = assigned_job()
    jobs.apply_status(VALIDATOR.hotkey, status(job, "accepted", attempt=2))
    jobs.apply_status(VALIDATOR.hotkey, status(job, "execution_done", attempt=1))
    job.refresh_from_db()
    assert (job.status, job.attempt) == ("accepted", 2)


def test_cancel_job_ends_it_and_tells_its_validator() -> None:
    channel = async_to_sync(get_channel_layer().new_channel)()
    ValidatorPresence.objects.create(hotkey=VALIDATOR.hotkey, channel_name=channel)
    job = assigned_job()
    update = jobs.cancel_job(job, "changed my mind")
    assert update.status == "cancelled" and update.failure is not None
    assert (update.failure.reason, update.failure.message) == ("cancelled", "changed my mind")
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert history(job) == [(1, "sent"), (1, "cancelled")]
    assert receive(channel) == {"type": "job.cancel", "job_id": str(job.id), "reason": "changed my mind"}


def test_cancel_job_that_ended_is_a_conflict() -> None:
    job = assigned_job()
    jobs.apply_status(VALIDATOR.hotkey, status(job, "completed", result=JobResult(exit_code=0)))
    with pytest.raises(jobs.JobConflict, match="job already ended: completed"):
        jobs.cancel_job(job)


def test_push_event_reaches_the_jobs_group() -> None:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    job = create_job()
    async_to_sync(layer.group_add)(jobs.event_group(job.id), channel)
    update = status(job, "accepted")
    jobs.push_event(update)
    event = receive(channel)
    assert (event["type"], event["frame"]) == ("job.event", update.encode())
