"""Websocket limits in the consumer base (node/consumers.py), through the facilitator's endpoints.

Connections per hotkey (closed 4429 once the handshake names the hotkey), frames a second per
connection (``error{code: rate_limited}``, then 4429 for a peer that keeps flooding), frames over
64 KiB before the handshake (closed 1009, unparsed). The frame size limit belongs to the server
(grid/serve.py): tests/reliability/test_limits.py, and tests/node/test_ws_limits.py for its
handshake cap.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from facilitator.consumers import ClientEventsConsumer, ValidatorConsumer
from node.consumers import CLOSE_TOO_MANY, open_connections
from protocol.handshake import MAX_HANDSHAKE_FRAME_BYTES, ClientHandshake
from protocol.messages import AUTH_FROM_SERVER, FACILITATOR_TO_CLIENT, AuthOk, Error, JobWatch, parse_frame
from tests.ws import WAIT_S, Peer

from .conftest import CLIENT, OTHER_CLIENT, VALIDATOR, Dial

pytestmark = pytest.mark.django_db(transaction=True)


def limits(**roles: dict[str, float]) -> Any:
    """``GRID_WS_LIMITS`` with ``roles`` replaced (``connections``, ``frame_rate``, ``frame_burst``)."""
    return override_settings(GRID_WS_LIMITS={**settings.GRID_WS_LIMITS, **roles})


UNLIMITED = {"connections": 0, "frame_rate": 0, "frame_burst": 0}


async def served(peer: Peer) -> None:
    job_id = str(uuid.uuid4())
    await peer.send(JobWatch(job_ids=[job_id]))
    reply = await peer.receive()
    assert isinstance(reply, Error) and (reply.code, reply.ref) == ("not_found", job_id), reply


async def refused_at_handshake(dial: Dial, keypair: Any, role: str) -> tuple[int, str]:
    peer = await dial(None)
    assert peer.challenge is not None
    await peer.send(ClientHandshake(keypair, role).receive_challenge(peer.challenge))
    return await peer.closed_with()


# -- connections per hotkey ------------------------------------------------------------------------


@pytest.fixture
def two_per_client() -> Iterator[None]:
    with limits(client={**UNLIMITED, "connections": 2}):
        yield


async def test_a_connection_past_the_hotkey_s_limit_is_closed_with_4429(
    dial_client: Dial, two_per_client: None
) -> None:
    first, _ = await dial_client(CLIENT), await dial_client(CLIENT)
    assert await refused_at_handshake(dial_client, CLIENT, "client") == (4429, "too many connections for this hotkey")
    await served(first)


async def test_other_hotkeys_are_counted_apart(dial_client: Dial, two_per_client: None) -> None:
    await dial_client(CLIENT)
    await dial_client(CLIENT)
    await served(await dial_client(OTHER_CLIENT))


async def test_a_closed_connection_makes_room(dial_client: Dial, two_per_client: None) -> None:
    first = await dial_client(CLIENT)
    await dial_client(CLIENT)
    await first.disconnect()
    await served(await dial_client(CLIENT))
    assert open_connections(ClientEventsConsumer).count(CLIENT.hotkey) == 2


async def test_a_refused_handshake_is_not_counted(dial_client: Dial, two_per_client: None) -> None:
    with override_settings(FACILITATOR_CLIENT_HOTKEYS=[OTHER_CLIENT.hotkey]):
        for _ in range(3):
            assert (await refused_at_handshake(dial_client, CLIENT, "client"))[0] == 4403
    assert open_connections(ClientEventsConsumer).count(CLIENT.hotkey) == 0


async def test_each_endpoint_counts_its_own_connections(
    dial_client: Dial, dial_validator: Dial, validators_allowed: None
) -> None:
    """A validator's connections are not a client's, even under one key; the roles have their own limits."""
    with limits(client={**UNLIMITED, "connections": 1}, validator={**UNLIMITED, "connections": 1}):
        await dial_validator(VALIDATOR)
        code, reason = await refused_at_handshake(dial_validator, VALIDATOR, "validator")
        assert (code, reason) == (CLOSE_TOO_MANY, "too many connections for this hotkey")
        with override_settings(FACILITATOR_CLIENT_HOTKEYS=["*"]):
            await served(await dial_client(VALIDATOR))
    assert open_connections(ValidatorConsumer).count(VALIDATOR.hotkey) == 1


async def test_a_role_without_a_connection_limit_counts_nothing(dial_client: Dial) -> None:
    with limits(client=UNLIMITED):
        peers = [await dial_client(CLIENT) for _ in range(5)]
        await served(peers[-1])
        assert open_connections(ClientEventsConsumer) is None


async def test_every_connection_is_released_on_close(dial_client: Dial, two_per_client: None) -> None:
    peers = [await dial_client(CLIENT), await dial_client(CLIENT)]
    for peer in peers:
        await peer.disconnect()
    assert open_connections(ClientEventsConsumer).count(CLIENT.hotkey) == 0


# -- frames before the handshake ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/client/", "/ws/validator/"])
@pytest.mark.parametrize("kind", ["text", "bytes", "multibyte text"])
async def test_a_frame_over_64_kib_before_the_handshake_is_closed_with_1009(dial: Dial, path: str, kind: str) -> None:
    peer = await dial(path, None, "client", FACILITATOR_TO_CLIENT)
    over = MAX_HANDSHAKE_FRAME_BYTES + 1
    if kind == "bytes":
        await peer.communicator.send_to(bytes_data=b"x" * over)
    else:  # 3 UTF-8 bytes a character: under the limit in characters, over it in bytes
        await peer.send("x" * over if kind == "text" else "€" * (over // 3 + 1))
    assert await peer.closed_with() == (1009, "frame exceeds the handshake's limit of 65536 bytes")


async def test_a_handshake_frame_within_the_cap_still_authenticates(dial_client: Dial) -> None:
    """An auth.response padded to just under 64 KiB (spaces are valid JSON) is still accepted."""
    peer = await dial_client(None)
    assert peer.challenge is not None
    answer = ClientHandshake(CLIENT, "client").receive_challenge(peer.challenge).encode()
    await peer.send(answer + " " * (MAX_HANDSHAKE_FRAME_BYTES - len(answer)))
    assert isinstance(parse_frame(await peer.communicator.receive_from(WAIT_S), AUTH_FROM_SERVER), AuthOk)
    await served(peer)


# -- frames a second -------------------------------------------------------------------------------


async def test_a_frame_flood_is_answered_rate_limited_then_closed_with_4429(dial_client: Dial) -> None:
    with limits(client={"connections": 0, "frame_rate": 1, "frame_burst": 3}):
        peer = await dial_client(CLIENT)
        for _ in range(3):
            await served(peer)
        await peer.send(JobWatch(job_ids=[str(uuid.uuid4())]))
        warning = await peer.receive()
        assert isinstance(warning, Error)
        assert (warning.code, warning.message) == (
            "rate_limited",
            "frame dropped: more than 1 frames a second; slow down",
        )
        for _ in range(10):
            await peer.send(JobWatch(job_ids=[str(uuid.uuid4())]))
        # Dropped in silence (one warning a second at most), until the tolerance is spent.
        assert await peer.closed_with() == (4429, "too many frames: kept sending more than 1 a second")


async def test_heartbeats_count_as_frames(dial_client: Dial) -> None:
    with limits(client={"connections": 0, "frame_rate": 1, "frame_burst": 2}):
        peer = await dial_client(CLIENT)
        for _ in range(2):
            await peer.send({"type": "heartbeat"})
        await peer.send({"type": "heartbeat"})
        warning = await peer.receive()
        assert isinstance(warning, Error) and warning.code == "rate_limited"


async def test_each_frame_of_a_batch_counts_against_the_rate(dial_client: Dial) -> None:
    """A batch is no way around the frame rate: its frames past the burst are dropped as frames
    sent one by one would be, and the ones within it are answered."""
    with limits(client={"connections": 0, "frame_rate": 1, "frame_burst": 3}):
        peer = await dial_client(CLIENT)
        job_ids = [str(uuid.uuid4()) for _ in range(5)]
        await peer.send("[" + ",".join(JobWatch(job_ids=[job_id]).encode() for job_id in job_ids) + "]")
        replies = [await peer.receive() for _ in range(4)]
        assert [(reply.code, reply.ref) for reply in replies[:3]] == [("not_found", job_id) for job_id in job_ids[:3]]
        assert replies[3].code == "rate_limited"
        await peer.expect_nothing()  # the fifth dropped in silence


async def test_without_a_frame_rate_nothing_is_dropped(dial_client: Dial) -> None:
    with limits(client=UNLIMITED):
        peer = await dial_client(CLIENT)
        for _ in range(30):
            await served(peer)


async def test_a_flooding_client_does_not_affect_another_connection_of_the_same_hotkey(dial_client: Dial) -> None:
    with limits(client={"connections": 0, "frame_rate": 1, "frame_burst": 2}):
        flooder, calm = await dial_client(CLIENT), await dial_client(CLIENT)
        for _ in range(10):
            await flooder.send(JobWatch(job_ids=[str(uuid.uuid4())]))
        await served(calm)


async def test_a_consumer_that_crashes_gives_its_place_back(
    dial_client: Dial, two_per_client: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consumer ended by an exception (its channel layer failing, say) never sees
    websocket_disconnect: its connection must still stop counting, or the hotkey is locked out."""
    crashing = await dial_client(CLIENT)
    await dial_client(CLIENT)
    table = open_connections(ClientEventsConsumer)
    assert table is not None and table.count(CLIENT.hotkey) == 2

    async def broken(self: Any, message: Any) -> None:
        raise ConnectionError("the channel layer is gone")

    monkeypatch.setattr(ClientEventsConsumer, "websocket_receive", broken)
    await crashing.send(JobWatch(job_ids=[str(uuid.uuid4())]))
    with pytest.raises(ConnectionError):
        await crashing.communicator.wait(2)
    monkeypatch.undo()

    async def already_gone(*args: Any) -> None:
        pass

    crashing.communicator.disconnect = already_gone  # type: ignore[method-assign] (the fixture's close)
    assert table.count(CLIENT.hotkey) == 1
    await served(await dial_client(CLIENT))
