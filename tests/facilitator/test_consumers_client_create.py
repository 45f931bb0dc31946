"""``job.create`` on the client event stream (facilitator/consumers.py ClientEventsConsumer).

The same job, checks and refusal codes as ``POST /api/v1/jobs``; the job is watched from its
first event on, and a repeat of the same signed job is a safe retry.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from facilitator.consumers import ClientEventsConsumer
from facilitator.models import Job
from protocol.messages import Error, JobCreate, JobNew, JobStatusUpdate
from protocol.spec import JobSpec

from .conftest import CLIENT, OTHER_CLIENT, VALIDATOR, Dial, SignedApi, sign_raw_job, signed_job

pytestmark = pytest.mark.django_db(transaction=True)


def create(body: dict) -> JobCreate:
    return JobCreate(**body)


async def stored(job_id: str) -> Job | None:
    return await Job.objects.filter(id=job_id).afirst()


async def test_create_stores_the_signed_job_and_pushes_its_events(dial_client: Dial) -> None:
    body = signed_job(CLIENT)
    client = await dial_client(CLIENT)
    await client.send(create(body))
    sent = await client.receive()
    assert isinstance(sent, JobStatusUpdate), sent
    assert (sent.job_id, sent.status.value, sent.attempt) == (body["job_id"], "sent", 1)
    job = await stored(body["job_id"])
    assert job is not None
    assert (job.client_hotkey, job.spec, job.client_signature) == (CLIENT.hotkey, body["spec"], body["signature"])

    # Watched from its first event: the cancel through REST reaches this stream.
    response = await sync_to_async(SignedApi(CLIENT).post)(f"/jobs/{body['job_id']}/cancel")
    assert response.status_code == 200, response.content
    cancelled = await client.receive()
    assert isinstance(cancelled, JobStatusUpdate) and cancelled.status.value == "cancelled"
    await client.expect_nothing()


async def test_a_created_job_goes_to_the_connected_validator(
    dial_client: Dial, dial_validator: Dial, validators_allowed: None
) -> None:
    validator = await dial_validator(VALIDATOR)
    body = signed_job(CLIENT)
    client = await dial_client(CLIENT)
    await client.send(create(body))
    assert isinstance(await client.receive(), JobStatusUpdate)
    new = await validator.receive()
    assert isinstance(new, JobNew), new
    assert (new.job_id, new.spec, new.client_signature) == (body["job_id"], body["spec"], body["signature"])
    job = await stored(body["job_id"])
    assert job is not None and job.validator_hotkey == VALIDATOR.hotkey


async def test_a_repeat_replays_the_history_and_stores_nothing_new(dial_client: Dial) -> None:
    body = signed_job(CLIENT)
    client = await dial_client(CLIENT)
    await client.send(create(body))
    first = await client.receive()
    again = await dial_client(CLIENT)  # a retry after a reconnect comes on another connection
    await again.send(create(body))
    replayed = await again.receive()
    assert isinstance(replayed, JobStatusUpdate) and replayed == first
    await again.expect_nothing()
    assert await Job.objects.filter(id=body["job_id"]).acount() == 1


async def test_the_same_id_for_another_job_is_a_conflict(dial_client: Dial) -> None:
    body = signed_job(CLIENT)
    client = await dial_client(CLIENT)
    await client.send(create(body))
    assert isinstance(await client.receive(), JobStatusUpdate)
    other = signed_job(CLIENT, job_id=body["job_id"], command=["echo", "other"])
    await client.send(create(other))
    refused = await client.receive()
    assert isinstance(refused, Error) and (refused.code, refused.ref) == ("conflict", body["job_id"])
    job = await stored(body["job_id"])
    assert job is not None and job.spec == body["spec"]  # the first job is untouched


@pytest.mark.parametrize(
    ("body", "code"),
    [
        # Signed by another key than the stream's: not this client's job.
        (lambda: signed_job(OTHER_CLIENT), "bad_job_signature"),
        # A valid signature over another spec than the one sent.
        (lambda: {**signed_job(CLIENT), "spec": JobSpec(command=["echo", "swapped"]).to_wire()}, "bad_job_signature"),
        (lambda: {**signed_job(CLIENT), "signature": "ab" * 64}, "bad_job_signature"),
        (lambda: sign_raw_job({"command": []}, CLIENT), "invalid_spec"),
        (lambda: sign_raw_job({"command": ["true"], "timeout_s": -1}, CLIENT), "invalid_spec"),
        (lambda: {**signed_job(CLIENT), "job_id": "not-a-uuid"}, "invalid_request"),
    ],
    ids=["other-key", "swapped-spec", "garbage-signature", "empty-command", "negative-timeout", "bad-id"],
)
async def test_a_refused_create_names_the_job_and_stores_nothing(dial_client: Dial, body, code: str) -> None:
    message = create(body())
    client = await dial_client(CLIENT)
    await client.send(message)
    refused = await client.receive()
    assert isinstance(refused, Error), refused
    assert (refused.code, refused.ref) == (code, message.job_id), refused
    assert refused.message
    if code == "invalid_spec":  # each field's problem, as the REST refusal lists them
        assert refused.errors and all({"field", "message"} <= set(error) for error in refused.errors)
    assert await Job.objects.acount() == 0
    await client.expect_nothing()
    # The connection stays usable.
    good = signed_job(CLIENT)
    await client.send(create(good))
    assert isinstance(await client.receive(), JobStatusUpdate)


async def test_a_create_over_the_request_body_limit_is_refused(dial_client: Dial) -> None:
    body = signed_job(CLIENT, env={"BIG": "x" * 5000})
    client = await dial_client(CLIENT)
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=4096):
        await client.send(create(body))
        refused = await client.receive()
    assert isinstance(refused, Error) and (refused.code, refused.ref) == ("request_too_large", body["job_id"])
    assert await Job.objects.acount() == 0


async def test_creates_past_the_watch_limit_are_refused_as_too_many(
    dial_client: Dial, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ClientEventsConsumer, "MAX_WATCHED", 1)
    first, second = signed_job(CLIENT), signed_job(CLIENT)
    client = await dial_client(CLIENT)
    await client.send(create(first))
    assert isinstance(await client.receive(), JobStatusUpdate)
    await client.send(create(second))
    refused = await client.receive()
    assert isinstance(refused, Error) and (refused.code, refused.ref) == ("too_many", second["job_id"])
    assert await stored(second["job_id"]) is None


async def test_malformed_creates_get_error_frames(dial_client: Dial) -> None:
    client = await dial_client(CLIENT)
    await client.send('{"type": "job.create", "job_id": "x"}')  # no spec, no signature
    refused = await client.receive()
    assert isinstance(refused, Error) and refused.code == "invalid_message", refused
    await client.send('{"type": "job.create", "job_id": "x", "spec": [], "signature": "s"}')
    refused = await client.receive()
    assert isinstance(refused, Error) and refused.code == "invalid_message", refused
    assert await Job.objects.acount() == 0
