"""The client event stream ``ws/client/`` (facilitator/consumers.py ClientEventsConsumer).

``job.watch`` replays a job's history, then pushes every new status; nothing is polled.
"""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from facilitator import jobs
from facilitator.consumers import ClientEventsConsumer
from facilitator.models import Job
from protocol.handshake import ClientHandshake
from protocol.messages import Error, JobStatusUpdate, JobUnwatch, JobWatch
from protocol.messages.base import MAX_FRAME_BYTES
from protocol.status import JobStatus
from tests.ws import Peer

from .conftest import CLIENT, OTHER_CLIENT, STRANGER, Dial, SignedApi, acreate_job

pytestmark = pytest.mark.django_db(transaction=True)


async def cancel(job: Job) -> None:
    response = await sync_to_async(SignedApi(CLIENT).post)(f"/jobs/{job.id}/cancel")
    assert response.status_code == 200, response.content


async def push(job: Job, status: str, attempt: int = 1) -> JobStatusUpdate:
    """A status as the facilitator pushes it, without a validator in the way."""
    update = JobStatusUpdate(job_id=str(job.id), status=status, attempt=attempt, at=time.time())
    await sync_to_async(jobs.push_event)(update)
    return update


async def statuses(client: Peer, count: int) -> list[tuple[str, str]]:
    received = [await client.receive() for _ in range(count)]
    assert all(isinstance(message, JobStatusUpdate) for message in received), received
    return [(message.job_id, message.status.value) for message in received]


# -- handshake -------------------------------------------------------------------------------------


async def test_any_client_key_is_authenticated_by_default(dial_client: Dial) -> None:
    client = await dial_client(STRANGER)
    await client.expect_nothing()


async def test_a_client_not_on_the_allow_list_is_closed_with_4403(dial_client: Dial) -> None:
    with override_settings(FACILITATOR_CLIENT_HOTKEYS=[OTHER_CLIENT.hotkey]):
        peer = await dial_client(None)
        assert peer.challenge is not None
        await peer.send(ClientHandshake(CLIENT, "client").receive_challenge(peer.challenge))
        assert await peer.closed_with() == (4403, f"hotkey {CLIENT.hotkey} is not allowed as client")


async def test_a_validator_role_on_the_client_endpoint_is_closed_with_4403(dial_client: Dial) -> None:
    peer = await dial_client(None)
    assert peer.challenge is not None
    await peer.send(ClientHandshake(CLIENT, "validator").receive_challenge(peer.challenge))
    assert await peer.closed_with() == (4403, "this endpoint is for role 'client'")


async def test_a_frame_before_the_handshake_is_closed_with_4401(dial_client: Dial) -> None:
    peer = await dial_client(None)
    await peer.send(JobWatch(job_ids=["x"]))
    code, reason = await peer.closed_with()
    assert code == 4401
    assert reason == "expected auth.response: unknown message type 'job.watch'"


# -- watching --------------------------------------------------------------------------------------


async def test_watch_replays_the_history_then_pushes_new_events(dial_client: Dial) -> None:
    job = await acreate_job()
    await sync_to_async(jobs.record_status)(
        job, JobStatusUpdate(job_id=str(job.id), status=JobStatus.RECEIVED, at=time.time())
    )
    client = await dial_client(CLIENT)
    await client.send(JobWatch(job_ids=[str(job.id)]))
    assert await statuses(client, 2) == [(str(job.id), "sent"), (str(job.id), "received")]
    await client.expect_nothing()

    await cancel(job)
    [(job_id, status)] = await statuses(client, 1)
    assert (job_id, status) == (str(job.id), "cancelled")


async def test_watch_of_several_jobs_replays_each_and_pushes_each(dial_client: Dial) -> None:
    first, second = await acreate_job(), await acreate_job()
    client = await dial_client(CLIENT)
    await client.send(JobWatch(job_ids=[str(first.id), str(second.id)]))
    assert await statuses(client, 2) == [(str(first.id), "sent"), (str(second.id), "sent")]
    await push(second, "accepted")
    await push(first, "accepted")
    assert await statuses(client, 2) == [(str(second.id), "accepted"), (str(first.id), "accepted")]


async def test_events_of_unwatched_jobs_are_not_pushed(dial_client: Dial) -> None:
    watched, other = await acreate_job(), await acreate_job()
    client = await dial_client(CLIENT)
    await client.send(JobWatch(job_ids=[str(watched.id)]))
    await statuses(client, 1)
    await push(other, "accepted")
    await client.expect_nothing()


async def test_unwatch_stops_the_pushes(dial_client: Dial) -> None:
    job = await acreate_job()
    client = await dial_client(CLIENT)
    await client.send(JobWatch(job_ids=[str(job.id)]))
    await statuses(client, 1)
    await client.send(JobUnwatch(job_ids=[str(job.id)]))
    await client.expect_nothing()
    await push(job, "accepted")
    await client.expect_nothing()


async def test_every_watcher_of_a_job_gets_its_events(dial_client: Dial) -> None:
    job = await acreate_job()
    one, two = await dial_client(CLIENT), await dial_client(CLIENT)
    for client in (one, two):
        await client.send(JobWatch(job_ids=[str(job.id)]))
        await statuses(client, 1)
    update = await push(job, "accepted")
    assert await one.receive() == update
    assert await two.receive() == update


async def test_watching_someone_elses_job_is_not_found_and_pushes_nothing(dial_client: Dial) -> None:
    theirs = await acreate_job(OTHER_CLIENT)
    client = await dial_client(CLIENT)
    await client.send(JobWatch(job_ids=[str(theirs.id)]))
    assert await client.receive() == Error(code="not_found", message=f"no job {theirs.id}", ref=str(theirs.id))
    await client.expect_nothing()
    await push(theirs, "accepted")
    await client.expect_nothing()


@pytest.mark.parametrize("job_id", ["not-a-job", "00000000-0000-4000-8000-000000000000"])
async def test_watching_a_malformed_or_unknown_id_is_not_found(dial_client: Dial, job_id: str) -> None:
    client = await dial_client(CLIENT)
    await client.send(JobWatch(job_ids=[job_id]))
    assert await client.receive() == Error(code="not_found", message=f"no job {job_id}", ref=job_id)
    await client.expect_nothing()


async def test_a_watch_mixing_own_and_foreign_jobs_refuses_only_the_foreign_one(dial_client: Dial) -> None:
    mine, theirs = await acreate_job(), await acreate_job(OTHER_CLIENT)
    client = await dial_client(CLIENT)
    await client.send(JobWatch(job_ids=[str(theirs.id), str(mine.id)]))
    error = await client.receive()
    assert isinstance(error, Error) and (error.code, error.ref) == ("not_found", str(theirs.id))
    assert await statuses(client, 1) == [(str(mine.id), "sent")]


# -- bad frames ------------------------------------------------------------------------------------


async def test_bad_frames_get_error_frames_and_the_connection_stays_usable(dial_client: Dial) -> None:
    job = await acreate_job()
    client = await dial_client(CLIENT)
    expected = [
        ("not json", "bad_json", "frame is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ('"job.watch"', "bad_json", "frame must be a JSON object with a string 'type'"),
        ('{"type": "job.status"}', "unknown_type", "unknown message type 'job.status'"),
        ('{"type": "job.watch", "job_ids": []}', "invalid_message", "invalid job.watch message: job_ids: List should"),
        ('{"type": "job.watch"}', "invalid_message", "invalid job.watch message: job_ids: Field required"),
    ]
    for frame, code, message in expected:
        await client.send(frame)
        error = await client.receive()
        assert isinstance(error, Error), (frame, error)
        assert (error.code, error.ref) == (code, None), (frame, error)
        assert error.message.startswith(message), (frame, error)
    await client.send(JobWatch(job_ids=[str(job.id)]))
    assert await statuses(client, 1) == [(str(job.id), "sent")]


async def test_a_frame_over_the_size_limit_is_refused_unread(dial_client: Dial) -> None:
    client = await dial_client(CLIENT)
    frame = '{"type": "job.watch", "job_ids": ["' + "x" * MAX_FRAME_BYTES + '"]}'
    await client.send(frame)
    error = await client.receive()
    assert isinstance(error, Error) and error.code == "frame_too_large"
    assert error.message == f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}"


async def test_an_error_frame_from_the_peer_is_logged_not_answered(
    dial_client: Dial, caplog: pytest.LogCaptureFixture
) -> None:
    """Answering the peer's error with another error would only echo back and forth."""
    client = await dial_client(CLIENT)
    await client.send(Error(code="oops", message="something went wrong", ref="abc"))
    await client.expect_nothing()
    assert "reports oops: something went wrong (ref abc)" in caplog.text


async def test_watching_more_than_the_limit_is_refused_as_too_many(
    dial_client: Dial, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ClientEventsConsumer, "MAX_WATCHED", 1)
    first, second = await acreate_job(), await acreate_job()
    client = await dial_client(CLIENT)
    await client.send(JobWatch(job_ids=[str(first.id), str(second.id)]))
    assert await client.receive() == Error(code="too_many", message="watch at most 1 jobs")
    await client.expect_nothing()
    await push(first, "accepted")
    await client.expect_nothing()
