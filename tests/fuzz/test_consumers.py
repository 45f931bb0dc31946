"""Fuzzing the websocket consumers (node/consumers.py and its subclasses) over Channels' communicator.

Four endpoints: the facilitator's ``ws/validator/`` and ``ws/client/``, the miner's
``ws/validator/`` and ``ws/executor/``. Before authentication, any frame that is not a valid
``auth.response`` closes the connection with 4401 or 4403. After it, every fuzzed frame is
answered with an ``error`` frame (never ``internal_error``) or acted on, nothing is logged as an
error, the connection stays open, and it still answers: a last bad frame gets its ``error``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

import miner.relay
from facilitator import jobs
from facilitator.models import Job
from facilitator.routing import websocket_urlpatterns as facilitator_routes
from miner.executors.classes import parse_classes
from miner.executors.pool import ExecutorPool
from miner.routing import websocket_urlpatterns as miner_routes
from node.identity import own_keypair
from protocol.errors import FrameError
from protocol.handshake import ClientHandshake
from protocol.keys import Keypair
from protocol.messages import (
    AUTH_FROM_CLIENT,
    AUTH_FROM_SERVER,
    CLIENT_TO_FACILITATOR,
    EXECUTOR_TO_MINER,
    FACILITATOR_TO_CLIENT,
    FACILITATOR_TO_VALIDATOR,
    MINER_TO_EXECUTOR,
    MINER_TO_VALIDATOR,
    VALIDATOR_TO_FACILITATOR,
    VALIDATOR_TO_MINER,
    AuthChallenge,
    AuthOk,
    Error,
    JobInitial,
    Message,
    parse_frame,
)
from protocol.spec import sign_job
from tests.ws import frames_in

from .conftest import fuzz
from .samples import CLIENT, JOB_ID, MESSAGES, VALIDATOR
from .strategies import encoded_frames, hostile_text, json_values, mutated

pytestmark = [pytest.mark.timeout(300), pytest.mark.django_db(transaction=True)]

WAIT_S = 5.0
# Each example opens a connection and runs a handshake: fewer examples, several frames each.
WS = fuzz(0.5, shared_fixtures=True)


@dataclass(frozen=True)
class Endpoint:
    name: str
    app: Any
    path: str
    role: str
    inbound: TypeAdapter[Any]  # what the consumer parses
    outbound: TypeAdapter[Any]  # what it sends back


ENDPOINTS = {
    e.name: e
    for e in [
        Endpoint(
            "facilitator-validator",
            URLRouter(facilitator_routes),
            "/ws/validator/",
            "validator",
            VALIDATOR_TO_FACILITATOR,
            FACILITATOR_TO_VALIDATOR,
        ),
        Endpoint(
            "facilitator-client",
            URLRouter(facilitator_routes),
            "/ws/client/",
            "client",
            CLIENT_TO_FACILITATOR,
            FACILITATOR_TO_CLIENT,
        ),
        Endpoint(
            "miner-validator",
            URLRouter(miner_routes),
            "/ws/validator/",
            "validator",
            VALIDATOR_TO_MINER,
            MINER_TO_VALIDATOR,
        ),
        Endpoint(
            "miner-executor", URLRouter(miner_routes), "/ws/executor/", "executor", EXECUTOR_TO_MINER, MINER_TO_EXECUTOR
        ),
    ]
}


# -- the world the consumers live in ---------------------------------------------------------------


class _Process:
    """A spawned executor that never exits on its own (``asyncio.subprocess.Process``'s shape)."""

    pid, returncode = 4242, None

    def __init__(self) -> None:
        self._exited = asyncio.get_running_loop().create_future()

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        if not self._exited.done():
            self.returncode = -9
            self._exited.set_result(-9)


class _Spawner:
    """Stands in for the fork server: remembers each executor's one-time key."""

    def __init__(self) -> None:
        self.keypairs: dict[str, Keypair] = {}
        self.processes: list[_Process] = []

    async def spawn(self, keypair: Keypair) -> _Process:
        self.keypairs[keypair.hotkey] = keypair
        self.processes.append(_Process())
        return self.processes[-1]


class _Errors(logging.Handler):
    """Collects what any logger reports at ERROR: a handler that raised, a task that died."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged_errors() -> Iterator[_Errors]:
    handler = _Errors()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


@pytest.fixture
async def world(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[_Spawner]:
    """Both parties' settings, the miner's pool on a stand-in spawner, and a job of ``CLIENT`` on ``VALIDATOR``."""
    spawner = _Spawner()
    pool = ExecutorPool(parse_classes("cpu.small:2:1"), spawner)  # type: ignore[arg-type]
    monkeypatch.setattr(miner.relay, "_pool", pool)
    with override_settings(
        CHANNEL_LAYERS=settings.CHANNEL_LAYERS,  # a fresh layer for this test's event loop
        FACILITATOR_VALIDATOR_HOTKEYS=[VALIDATOR.hotkey],
        FACILITATOR_CLIENT_HOTKEYS=["*"],
        FACILITATOR_REDELIVER_S=60.0,
        MINER_VALIDATOR_HOTKEYS=[VALIDATOR.hotkey],
        GRID_WS_LIMITS={},  # the rate limits are not under test: every fuzzed frame must reach the parser
    ):
        await database_sync_to_async(_job_of_client)()
        yield spawner
        for slot in list(pool.slots.values()):
            pool.release(slot)
        for process in spawner.processes:
            process.kill()
        await asyncio.sleep(0)


def _job_of_client() -> None:
    spec = {"command": ["true"]}
    jobs.create_job(CLIENT.hotkey, JOB_ID, spec, sign_job(CLIENT, JOB_ID, spec))
    Job.objects.filter(id=JOB_ID).update(validator_hotkey=VALIDATOR.hotkey)


async def _keypair_for(endpoint: Endpoint, spawner: _Spawner) -> Keypair:
    """The key the endpoint admits: the validator's, the client's, or a warm executor's one-time key
    (its slot reserved for ``JOB_ID``, so that the executor's reports reach the relay)."""
    if endpoint.role == "validator":
        return VALIDATOR
    if endpoint.role == "client":
        return CLIENT
    pool = miner.relay._pool
    assert pool is not None
    pool.ensure_warm()
    for _ in range(5):
        await asyncio.sleep(0)  # the spawn tasks run up to the fork server's answer
    for hotkey, slot in pool.slots.items():
        if hotkey in spawner.keypairs and not slot.connected:
            if slot.job_id is None and JOB_ID not in pool.jobs:
                initial = JobInitial(job_id=JOB_ID, executor_class=slot.executor_class).encode()
                pool.reserve(JOB_ID, slot.executor_class, None, initial)  # type: ignore[arg-type]
            return spawner.keypairs[hotkey]
    raise AssertionError("no executor is expected")


# -- talking to a consumer -------------------------------------------------------------------------


async def _open(endpoint: Endpoint) -> tuple[WebsocketCommunicator, AuthChallenge]:
    communicator = WebsocketCommunicator(endpoint.app, endpoint.path)
    connected, _ = await communicator.connect(WAIT_S)
    assert connected
    challenge = parse_frame(await communicator.receive_from(WAIT_S), AUTH_FROM_SERVER)
    assert isinstance(challenge, AuthChallenge) and challenge.server_hotkey == own_keypair().hotkey
    return communicator, challenge


async def _send(communicator: WebsocketCommunicator, frame: str | bytes) -> None:
    # Straight to the application: ``send_to`` refuses empty frames, which a peer can send.
    key = "bytes" if isinstance(frame, bytes) else "text"
    await communicator.send_input({"type": "websocket.receive", key: frame})


async def _next_frames(communicator: WebsocketCommunicator, endpoint: Endpoint) -> list[Message]:
    """The consumer's next websocket message (a frame or a batch): each frame must be one of the
    endpoint's outbound messages, never a close."""
    output = await communicator.receive_output(WAIT_S)
    assert output["type"] == "websocket.send", f"the consumer closed or failed: {output}"
    messages = frames_in(output.get("text") or output.get("bytes"), endpoint.outbound)
    for message in messages:
        if isinstance(message, Error):
            assert message.code != "internal_error", message
    return messages


async def _expect_error(communicator: WebsocketCommunicator, endpoint: Endpoint, code: str) -> None:
    """Read on (past what earlier frames caused) until the ``error`` frame with ``code``."""
    for _ in range(50):
        for message in await _next_frames(communicator, endpoint):
            if isinstance(message, Error) and message.code == code:
                return
    raise AssertionError(f"no {code} error came back")


async def _authenticated(endpoint: Endpoint, keypair: Keypair) -> WebsocketCommunicator:
    communicator, challenge = await _open(endpoint)
    client = ClientHandshake(keypair, endpoint.role, server_hotkey=challenge.server_hotkey)
    await communicator.send_to(text_data=client.receive_challenge(challenge).encode())
    client.receive_ok(parse_frame(await communicator.receive_from(WAIT_S), AUTH_FROM_SERVER))
    return communicator


def _local_verdict(frame: str | bytes, adapter: TypeAdapter[Any]) -> str | None:
    """The FrameError code the consumer must answer ``frame`` with, or ``None`` if it parses."""
    try:
        parse_frame(frame, adapter)
    except FrameError as exc:
        return exc.code
    return None


# -- strategies ------------------------------------------------------------------------------------


def frames_for(endpoint: Endpoint) -> st.SearchStrategy[str | bytes]:
    """Frames for ``endpoint``: its own messages mutated, other directions' messages, random JSON and text."""
    own = [m for m in MESSAGES if _local_verdict(m.encode(), endpoint.inbound) is None and m.type != "heartbeat"]
    fields = sorted({f for m in MESSAGES for f in type(m).model_fields})
    documents = st.one_of(
        st.sampled_from(own).flatmap(lambda m: mutated(json.loads(m.encode()), fields)),
        st.sampled_from(own).map(lambda m: json.loads(m.encode())),
        st.sampled_from(MESSAGES).map(lambda m: json.loads(m.encode())),
        st.builds(
            lambda tag, data: {**data, "type": tag},
            st.sampled_from(sorted({m.type for m in MESSAGES})),
            st.dictionaries(st.sampled_from(fields), json_values, max_size=4),
        ),
        json_values,
    )
    return st.one_of(encoded_frames(documents), hostile_text, st.binary(max_size=30))


# -- before authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENDPOINTS)
@WS
@given(data=st.data())
async def test_any_first_frame_but_a_valid_auth_response_is_closed_with_4401_or_4403(
    name: str, data: st.DataObject, world: _Spawner, logged_errors: _Errors
) -> None:
    """A fuzzed frame, or a real ``auth.response`` with fields changed, before authentication:
    closed with 4401 (not authenticated) or 4403 (wrong role or key), unless the change changed nothing."""
    endpoint = ENDPOINTS[name]
    communicator, challenge = await _open(endpoint)
    try:
        if data.draw(st.booleans(), label="mutate a real auth.response"):
            keypair = await _keypair_for(endpoint, world)
            real = ClientHandshake(keypair, endpoint.role, challenge.server_hotkey).receive_challenge(challenge)
            document = data.draw(mutated(json.loads(real.encode()), ["role", "hotkey", "client_nonce", "signature"]))
            frame: str | bytes = json.dumps(document)
            valid = _local_verdict(frame, AUTH_FROM_CLIENT) is None and parse_frame(frame, AUTH_FROM_CLIENT) == real
        else:
            frame, valid = data.draw(frames_for(endpoint), label="frame"), False
        await _send(communicator, frame)
        output = await communicator.receive_output(WAIT_S)
        if valid:
            assert output["type"] == "websocket.send" and isinstance(
                parse_frame(output["text"], AUTH_FROM_SERVER), AuthOk
            )
        else:
            assert output["type"] == "websocket.close", output
            assert output.get("code") in (4401, 4403), output
    finally:
        await communicator.disconnect()
    assert not logged_errors.records, [r.getMessage() for r in logged_errors.records]


# -- after authentication --------------------------------------------------------------------------


async def exchange(endpoint: Endpoint, keypair: Keypair, frames: list[str | bytes], errors: _Errors) -> None:
    """Send ``frames`` after authenticating: a bad one gets the ``error`` its parse gives, a good one
    is acted on; nothing is an ``internal_error`` or an ERROR log, and the connection still answers."""
    communicator = await _authenticated(endpoint, keypair)
    try:
        for frame in frames:
            await _send(communicator, frame)
            code = _local_verdict(frame, endpoint.inbound)
            if code is not None:
                await _expect_error(communicator, endpoint, code)
        await _send(communicator, "still there?")
        await _expect_error(communicator, endpoint, "bad_json")
    finally:
        await communicator.disconnect()
    assert not errors.records, [r.getMessage() for r in errors.records]


@pytest.mark.parametrize("name", ENDPOINTS)
@WS
@given(data=st.data())
async def test_fuzzed_frames_after_authentication_get_errors_and_the_connection_stays_usable(
    name: str, data: st.DataObject, world: _Spawner, logged_errors: _Errors
) -> None:
    """One to five fuzzed frames, text or bytes, then a bad one that must still be answered."""
    endpoint = ENDPOINTS[name]
    frames = data.draw(st.lists(frames_for(endpoint), min_size=1, max_size=5), label="frames")
    await exchange(endpoint, await _keypair_for(endpoint, world), frames, logged_errors)


def _status(**fields: Any) -> str:
    return json.dumps({"type": "job.status", "job_id": JOB_ID, "status": "accepted", "at": 1.0, **fields})


# Falsifying examples the fuzz found, kept as they were found (the parsers now refuse them).
FOUND = [
    # An attempt past a database integer column: the status could not be stored (OverflowError).
    ("facilitator-validator", [_status(attempt=2**63)]),
    # Free-form detail with a lone surrogate: stored, then it could not be relayed to watching
    # clients (PydanticSerializationError in the status flush, raised again at disconnect).
    ("facilitator-validator", [_status(detail={"a": "\ud800"})]),
    # Nested past pydantic's serialisation depth (255): the update could not be stored (ValueError).
    ("facilitator-validator", [_status(detail={"a": json.loads("[" * 300 + "]" * 300)})]),
    # An overflowing float, parsed as inf: its event payload was not valid JSON (IntegrityError).
    ("facilitator-validator", [_status().replace('"at": 1.0', '"at": 1e400')]),
    # NaN is not JSON: refused before any consumer looks at it.
    (
        "miner-validator",
        ['{"type":"job.initial","job_id":"j","executor_class":"cpu.small","timing":{"execution":NaN}}'],
    ),
]


@pytest.mark.parametrize(("name", "frames"), FOUND)
async def test_frames_that_once_got_past_the_parser_are_refused(
    name: str, frames: list[str], world: _Spawner, logged_errors: _Errors
) -> None:
    """Each is now refused with an ``error`` frame, and the connection carries on."""
    endpoint = ENDPOINTS[name]
    for frame in frames:
        assert _local_verdict(frame, endpoint.inbound) is not None, frame
    await exchange(endpoint, await _keypair_for(endpoint, world), frames, logged_errors)
