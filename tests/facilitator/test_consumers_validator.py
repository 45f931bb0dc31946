"""The facilitator's validator endpoint ``ws/validator/`` (facilitator/consumers.py, node/consumers.py).

Validators are played by hand over a ``WebsocketCommunicator``; jobs come from the real API or
from ``facilitator.jobs``; clients watching events are real ``ws/client/`` connections.
"""

from __future__ import annotations

import json
import logging
import time

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.test import override_settings

from facilitator.models import Job, JobEvent, ValidatorPresence
from protocol.handshake import ClientHandshake
from protocol.messages import (
    Error,
    JobCancel,
    JobNew,
    JobReceived,
    JobStatusAck,
    JobStatusUpdate,
    JobWatch,
)
from protocol.status import JobStatus
from tests.ws import QUIET_S, TIME_SCALE, Peer

from .conftest import CLIENT, OTHER_VALIDATOR, STRANGER, VALIDATOR, Dial, SignedApi, acreate_job, signed_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("validators_allowed")]


def update(job_id: str, status: str, attempt: int = 1) -> JobStatusUpdate:
    return JobStatusUpdate(job_id=job_id, status=status, attempt=attempt, at=time.time())


async def delivered(validator: Peer, job_id: str) -> JobNew:
    message = await validator.receive()
    assert isinstance(message, JobNew) and message.job_id == job_id, message
    return message


async def acknowledged(validator: Peer) -> list[tuple[str, int, str]]:
    """The statuses the facilitator acknowledged until it went quiet (and nothing else)."""
    keys = []
    while not await validator.communicator.receive_nothing(QUIET_S):
        message = await validator.receive()
        assert isinstance(message, JobStatusAck), message
        keys += [key.key() for key in message.statuses]
    return keys


async def events(job_id: str) -> list[tuple[int, str]]:
    return [(e.attempt, e.status) async for e in JobEvent.objects.filter(job_id=job_id).order_by("id")]


# -- handshake -------------------------------------------------------------------------------------


async def test_an_allowed_validator_is_authenticated_and_registered(dial_validator: Dial) -> None:
    validator = await dial_validator(VALIDATOR)
    await validator.expect_nothing()
    presence = await ValidatorPresence.objects.aget(hotkey=VALIDATOR.hotkey)
    assert presence.channel_name.strip()


async def test_a_validator_that_disconnects_is_no_longer_registered(dial_validator: Dial) -> None:
    validator = await dial_validator(VALIDATOR)
    await validator.communicator.disconnect()
    assert not await ValidatorPresence.objects.filter(hotkey=VALIDATOR.hotkey).aexists()


async def test_a_hotkey_not_allowed_as_validator_is_closed_with_4403(dial_validator: Dial) -> None:
    peer = await dial_validator(None)
    assert peer.challenge is not None
    await peer.send(ClientHandshake(STRANGER, "validator").receive_challenge(peer.challenge))
    assert await peer.closed_with() == (4403, f"hotkey {STRANGER.hotkey} is not allowed as validator")
    assert not await ValidatorPresence.objects.aexists()


async def test_a_client_role_on_the_validator_endpoint_is_closed_with_4403(dial_validator: Dial) -> None:
    peer = await dial_validator(None)
    assert peer.challenge is not None
    await peer.send(ClientHandshake(VALIDATOR, "client").receive_challenge(peer.challenge))
    assert await peer.closed_with() == (4403, "this endpoint is for role 'validator'")


async def test_a_bad_handshake_signature_is_closed_with_4401(dial_validator: Dial) -> None:
    peer = await dial_validator(None)
    assert peer.challenge is not None
    response = ClientHandshake(VALIDATOR, "validator").receive_challenge(peer.challenge)
    forged = response.model_copy(
        update={"signature": ("0" if response.signature[0] != "0" else "1") + response.signature[1:]}
    )
    await peer.send(forged)
    assert await peer.closed_with() == (4401, "handshake signature refused: signature does not verify")


async def test_a_response_to_another_connections_challenge_is_closed_with_4401(dial_validator: Dial) -> None:
    """Nonces are fresh per connection: a recorded answer cannot be replayed on a new connection."""
    first = await dial_validator(None)
    second = await dial_validator(None)
    assert first.challenge is not None
    await second.send(ClientHandshake(VALIDATOR, "validator").receive_challenge(first.challenge))
    code, _ = await second.closed_with()
    assert code == 4401


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("hello", "expected auth.response: frame is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ('{"type": "job.received", "job_id": "x"}', "expected auth.response: unknown message type 'job.received'"),
        ('{"type": "auth.response"}', "expected auth.response: invalid auth.response message: role: Field required;"),
    ],
)
async def test_anything_but_an_auth_response_first_is_closed_with_4401(
    dial_validator: Dial, frame: str, reason: str
) -> None:
    peer = await dial_validator(None)
    await peer.send(frame)
    code, why = await peer.closed_with()
    assert code == 4401
    assert why.startswith(reason)
    assert not await ValidatorPresence.objects.aexists()


async def test_a_peer_that_never_answers_the_challenge_is_closed_with_4401(
    dial_validator: Dial, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("node.consumers.HANDSHAKE_TIMEOUT_S", 0.05 * TIME_SCALE)
    peer = await dial_validator(None)
    assert await peer.closed_with() == (4401, "handshake timed out")


async def test_an_authenticated_validator_is_not_timed_out(
    dial_validator: Dial, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long enough for the handshake itself (over Redis in CI's second pass), short enough to fire
    # well inside the wait below if authenticating did not cancel it.
    monkeypatch.setattr("node.consumers.HANDSHAKE_TIMEOUT_S", 0.5 * TIME_SCALE)
    validator = await dial_validator(VALIDATOR)
    await validator.expect_nothing(2 * 0.5 * TIME_SCALE)


# -- batches -----------------------------------------------------------------------------------------


async def test_frames_sent_in_one_turn_go_as_one_batch(dial_validator: Dial) -> None:
    """Jobs waiting for a validator that connects go out together: one websocket message."""
    job_ids = {str((await acreate_job()).id) for _ in range(3)}
    validator = await dial_validator(VALIDATOR)
    output = await validator.communicator.receive_output(2 * TIME_SCALE)
    batch = json.loads(output["text"])
    assert isinstance(batch, list) and {frame["job_id"] for frame in batch} == job_ids
    assert {frame["type"] for frame in batch} == {"job.new"}


async def test_a_batch_from_the_validator_is_handled_frame_by_frame(dial_validator: Dial) -> None:
    """Each frame of a batch is handled as if it came alone: a bad one gets its own error and the
    frames around it still count."""
    first, second = [await acreate_job() for _ in range(2)]
    validator = await dial_validator(VALIDATOR)
    await validator.receive()  # their job.new, in one batch
    await validator.receive()
    received = [JobReceived(job_id=str(job.id)).encode() for job in (first, second)]
    await validator.send(f'[{received[0]}, {{"type": "job.bogus"}}, {received[1]}]')
    error = await validator.receive()
    assert isinstance(error, Error) and error.code == "unknown_type"
    await validator.expect_nothing()
    for job in (first, second):
        assert (await Job.objects.aget(id=job.id)).delivered_at is not None


# -- bad frames after the handshake ----------------------------------------------------------------


async def test_bad_frames_get_error_frames_and_the_connection_stays_usable(dial_validator: Dial) -> None:
    job = await acreate_job()
    validator = await dial_validator(VALIDATOR)
    await delivered(validator, str(job.id))
    expected = [
        ("{nope", "bad_json", "frame is not JSON: Expecting property name enclosed in double quotes"),
        ("[1]", "bad_json", "frame must be a JSON object with a string 'type'"),
        ("[]", "bad_json", "a batch holds 1 to 256 frames, not 0"),
        ('{"type": 7}', "bad_json", "frame must be a JSON object with a string 'type'"),
        ('{"type": "job.bogus"}', "unknown_type", "unknown message type 'job.bogus'"),
        ('{"type": "job.new", "job_id": "x"}', "unknown_type", "unknown message type 'job.new'"),
        ('{"type": "job.received"}', "invalid_message", "invalid job.received message: job_id: Field required"),
        (
            '{"type": "job.status", "job_id": "x", "status": "done", "at": 1}',
            "invalid_message",
            "invalid job.status message: status: Input should be 'sent', 'received'",
        ),
        (
            '{"type": "job.received", "job_id": "x", "extra": 1}',
            "invalid_message",
            "invalid job.received message: extra: Extra inputs are not permitted",
        ),
    ]
    for frame, code, message in expected:
        await validator.send(frame)
        error = await validator.receive()
        assert isinstance(error, Error), (frame, error)
        assert error.code == code, (frame, error)
        assert error.message.startswith(message), (frame, error)
    await validator.send(JobReceived(job_id=str(job.id)))
    await validator.send('{"type": "heartbeat"}')
    await validator.expect_nothing()
    assert (await Job.objects.aget(id=job.id)).delivered_at is not None


async def test_a_binary_frame_is_read_like_a_text_frame(dial_validator: Dial) -> None:
    job = await acreate_job()
    validator = await dial_validator(VALIDATOR)
    await delivered(validator, str(job.id))
    await validator.communicator.send_to(bytes_data=JobReceived(job_id=str(job.id)).encode().encode())
    await validator.expect_nothing()
    assert (await Job.objects.aget(id=job.id)).delivered_at is not None


# -- delivery --------------------------------------------------------------------------------------


async def test_a_job_created_before_the_validator_connects_is_delivered_after_auth(dial_validator: Dial) -> None:
    job = await acreate_job(env={"X": "1"})
    validator = await dial_validator(VALIDATOR)
    message = await delivered(validator, str(job.id))
    assert message.spec == {"command": ["echo", "hi"], "env": {"X": "1"}}
    assert (message.client_hotkey, message.client_signature) == (CLIENT.hotkey, job.client_signature)
    stored = await Job.objects.aget(id=job.id)
    assert stored.validator_hotkey == VALIDATOR.hotkey
    assert stored.dispatched_at is not None and stored.delivered_at is None


async def test_a_job_created_while_a_validator_is_connected_is_delivered_at_once(dial_validator: Dial) -> None:
    validator = await dial_validator(VALIDATOR)
    await validator.expect_nothing()  # let it finish delivering what was waiting (nothing)
    body = signed_job()
    response = await database_sync_to_async(SignedApi(CLIENT).post)("/jobs", body)
    assert response.status_code == 201
    assert response.json()["validator"] == VALIDATOR.hotkey
    await delivered(validator, body["job_id"])
    await validator.expect_nothing()


async def test_an_unacknowledged_job_is_redelivered_until_received(dial_validator: Dial) -> None:
    job = await acreate_job()
    with override_settings(FACILITATOR_REDELIVER_S=0.1 * TIME_SCALE):
        validator = await dial_validator(VALIDATOR)
        await delivered(validator, str(job.id))
        await delivered(validator, str(job.id))  # no job.received yet: sent again
        await validator.send(JobReceived(job_id=str(job.id)))
        # At most one redelivery may already be on its way; after that, silence.
        while not await validator.communicator.receive_nothing(3 * 0.1 * TIME_SCALE):
            await delivered(validator, str(job.id))
        await validator.expect_nothing(5 * 0.1 * TIME_SCALE)
    assert (await Job.objects.aget(id=job.id)).delivered_at is not None


async def test_a_received_job_is_not_delivered_again_on_reconnect(dial_validator: Dial) -> None:
    job = await acreate_job()
    first = await dial_validator(VALIDATOR)
    await delivered(first, str(job.id))
    await first.send(JobReceived(job_id=str(job.id)))
    await first.expect_nothing()
    await first.communicator.disconnect()
    again = await dial_validator(VALIDATOR)
    await again.expect_nothing()


async def test_an_unacknowledged_job_is_delivered_again_on_reconnect(dial_validator: Dial) -> None:
    job = await acreate_job()
    first = await dial_validator(VALIDATOR)
    await delivered(first, str(job.id))
    await first.communicator.disconnect()
    again = await dial_validator(VALIDATOR)
    await delivered(again, str(job.id))


async def test_a_job_assigned_to_one_validator_is_not_delivered_to_another(dial_validator: Dial) -> None:
    job = await acreate_job()
    mine = await dial_validator(VALIDATOR)
    await delivered(mine, str(job.id))
    other = await dial_validator(OTHER_VALIDATOR)
    await other.expect_nothing()


async def test_job_received_from_another_validator_does_not_acknowledge(dial_validator: Dial) -> None:
    job = await acreate_job()
    mine = await dial_validator(VALIDATOR)
    await delivered(mine, str(job.id))
    other = await dial_validator(OTHER_VALIDATOR)
    await other.send(JobReceived(job_id=str(job.id)))
    await other.expect_nothing()
    assert (await Job.objects.aget(id=job.id)).delivered_at is None


# -- statuses --------------------------------------------------------------------------------------


async def test_status_updates_are_stored_once_and_pushed_to_watchers(dial_validator: Dial, dial_client: Dial) -> None:
    job = await acreate_job()
    job_id = str(job.id)
    validator = await dial_validator(VALIDATOR)
    await delivered(validator, job_id)
    await validator.send(JobReceived(job_id=job_id))
    client = await dial_client(CLIENT)
    await client.send(JobWatch(job_ids=[job_id]))
    assert (await client.receive()).status is JobStatus.SENT

    accepted = update(job_id, "accepted").model_copy(update={"miner": "ab" * 32})
    await validator.send(accepted)
    await validator.send(accepted)  # redelivered after a reconnect, say
    pushed = await client.receive()
    assert pushed == accepted
    await client.expect_nothing()
    # Both acknowledged, so that the validator stops resending: stored once, known the second time.
    assert await acknowledged(validator) == [(job_id, 1, "accepted")] * 2

    assert await events(job_id) == [(1, "sent"), (1, "accepted")]
    stored = await Job.objects.aget(id=job.id)
    assert (stored.status, stored.miner_hotkey) == ("accepted", "ab" * 32)


async def test_a_status_from_a_validator_the_job_is_not_assigned_to_is_ignored(
    dial_validator: Dial, dial_client: Dial
) -> None:
    job = await acreate_job()
    job_id = str(job.id)
    mine = await dial_validator(VALIDATOR)
    await delivered(mine, job_id)
    client = await dial_client(CLIENT)
    await client.send(JobWatch(job_ids=[job_id]))
    await client.receive()

    other = await dial_validator(OTHER_VALIDATOR)
    await other.send(update(job_id, "completed"))
    assert await acknowledged(other) == [(job_id, 1, "completed")]  # ignored, and not to be resent
    await client.expect_nothing()
    assert await events(job_id) == [(1, "sent")]
    assert (await Job.objects.aget(id=job.id)).status == "sent"


async def test_a_status_for_an_unknown_job_is_ignored(dial_validator: Dial) -> None:
    validator = await dial_validator(VALIDATOR)
    await validator.send(update("00000000-0000-4000-8000-000000000000", "accepted"))
    assert await acknowledged(validator) == [("00000000-0000-4000-8000-000000000000", 1, "accepted")]
    assert not await JobEvent.objects.aexists()


async def test_a_status_for_a_job_id_that_is_not_a_uuid_leaves_the_connection_usable(dial_validator: Dial) -> None:
    job = await acreate_job()
    validator = await dial_validator(VALIDATOR)
    await delivered(validator, str(job.id))
    await validator.send(update("not-a-uuid", "accepted"))
    assert await acknowledged(validator) == [("not-a-uuid", 1, "accepted")]
    await validator.send(update(str(job.id), "accepted"))
    assert await acknowledged(validator) == [(str(job.id), 1, "accepted")]
    assert await events(str(job.id)) == [(1, "sent"), (1, "accepted")]


@pytest.mark.parametrize("frame", [update("not-a-uuid", "accepted"), JobReceived(job_id="not-a-uuid")])
async def test_a_job_id_that_is_not_a_uuid_is_ignored_like_an_unknown_job(
    dial_validator: Dial, caplog: pytest.LogCaptureFixture, frame: JobStatusUpdate | JobReceived
) -> None:
    validator = await dial_validator(VALIDATOR)
    await validator.send(frame)
    await validator.expect_nothing(skip=("job.status_ack",))
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


# -- cancellation ----------------------------------------------------------------------------------


async def test_a_cancelled_job_is_cancelled_on_its_validator(dial_validator: Dial, dial_client: Dial) -> None:
    job = await acreate_job()
    job_id = str(job.id)
    validator = await dial_validator(VALIDATOR)
    await delivered(validator, job_id)
    await validator.send(JobReceived(job_id=job_id))
    client = await dial_client(CLIENT)
    await client.send(JobWatch(job_ids=[job_id]))
    await client.receive()

    response = await sync_to_async(SignedApi(CLIENT).post)(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.content
    assert await validator.receive() == JobCancel(job_id=job_id, reason="cancelled by client")
    pushed = await client.receive()
    assert isinstance(pushed, JobStatusUpdate) and pushed.status is JobStatus.CANCELLED

    # The validator's late report neither revives the job nor hides the cancellation.
    await validator.send(update(job_id, "accepted"))
    stored = await Job.objects.aget(id=job.id)
    assert stored.status == "cancelled"


async def test_a_cancelled_job_is_not_delivered_to_a_validator_connecting_later(dial_validator: Dial) -> None:
    job = await acreate_job()
    response = await sync_to_async(SignedApi(CLIENT).post)(f"/jobs/{job.id}/cancel")
    assert response.status_code == 200
    validator = await dial_validator(VALIDATOR)
    await validator.expect_nothing()


async def test_a_job_cancelled_while_its_validator_was_away_is_cancelled_when_it_returns(
    dial_validator: Dial,
) -> None:
    """The validator may still be driving the job (or resume it after a restart): tell it again."""
    job = await acreate_job()
    job_id = str(job.id)
    validator = await dial_validator(VALIDATOR)
    await delivered(validator, job_id)
    await validator.send(JobReceived(job_id=job_id))
    await validator.expect_nothing()
    await validator.disconnect()

    response = await sync_to_async(SignedApi(CLIENT).post)(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200
    returning = await dial_validator(VALIDATOR)
    assert await returning.receive() == JobCancel(job_id=job_id, reason="cancelled while the validator was away")
    await returning.expect_nothing()


async def test_events_reach_clients_as_the_exact_frame_the_validator_sent(
    dial_validator: Dial, dial_client: Dial
) -> None:
    job = await acreate_job()
    job_id = str(job.id)
    validator = await dial_validator(VALIDATOR)
    await delivered(validator, job_id)
    client = await dial_client(CLIENT)
    await client.send(JobWatch(job_ids=[job_id]))
    await client.receive()
    frame = update(job_id, "executor_ready").model_copy(update={"detail": {"stage_s": 0.25}})
    await validator.send(frame)
    raw = await client.communicator.receive_from()
    assert json.loads(raw) == json.loads(frame.encode())
