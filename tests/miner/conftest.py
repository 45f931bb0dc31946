"""Helpers for the miner's tests: a stand-in spawner, a pool built on it, websocket peers.

``FakeSpawner`` stands in for ``ForkServerSpawner``, which starts real processes (the
integration tests cover it). It records the one-time keypair of every executor it was asked to
start, so a test can then dial ``ws/executor/`` with that key, as the executor would.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings
from pydantic import TypeAdapter

import miner.pool
from grid.identity import own_keypair
from miner.executors.classes import parse_classes
from miner.executors.pool import ExecutorPool, ExecutorSlot
from miner.routing import websocket_urlpatterns
from protocol.handshake import ClientHandshake
from protocol.keys import Keypair
from protocol.messages import (
    AUTH_FROM_SERVER,
    MINER_TO_EXECUTOR,
    MINER_TO_VALIDATOR,
    AuthChallenge,
    Message,
    parse_frame,
)

VALIDATOR = Keypair.generate()
OTHER_VALIDATOR = Keypair.generate()
STRANGER = Keypair.generate()

TIME_SCALE = float(os.environ.get("GRID_TEST_TIME_SCALE", "1"))
WAIT_S = 2.0 * TIME_SCALE
QUIET_S = 0.2 * TIME_SCALE

APP = URLRouter(websocket_urlpatterns)

OnLost = Callable[[ExecutorSlot, str], Awaitable[None]]


# -- the stand-in spawner --------------------------------------------------------------------------


class FakeProcess:
    """Shaped like ``asyncio.subprocess.Process``: ``pid``, ``returncode``, ``wait()``, ``kill()``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def exit(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self._exited.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        self.exit(-9)


class FakeSpawner:
    """Records each executor it is asked to start; ``fail`` makes the next spawns raise OSError."""

    def __init__(self) -> None:
        self.keypairs: list[Keypair] = []
        self.processes: dict[str, FakeProcess] = {}
        self.fail = False
        self.attempts = 0
        self._spawned: asyncio.Queue[Keypair] = asyncio.Queue()

    async def spawn(self, keypair: Keypair) -> FakeProcess:
        self.attempts += 1
        if self.fail:
            raise OSError("no executors today")
        process = FakeProcess(1000 + len(self.keypairs))
        self.keypairs.append(keypair)
        self.processes[keypair.hotkey] = process
        self._spawned.put_nowait(keypair)
        return process

    async def next_spawned(self) -> Keypair:
        """The keypair of the next executor started (waits for it)."""
        return await asyncio.wait_for(self._spawned.get(), WAIT_S)

    def close(self) -> None:
        """Stop waiting on the fake processes, so no pool task outlives the test."""
        for process in self.processes.values():
            if not process._exited.done():
                process._exited.cancel()


async def settle() -> None:
    """Let the pool's spawn tasks run up to their first wait."""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
async def spawner() -> AsyncIterator[FakeSpawner]:
    spawner = FakeSpawner()
    yield spawner
    await settle()
    spawner.close()
    await settle()


@pytest.fixture
def new_pool(spawner: FakeSpawner) -> Callable[..., ExecutorPool]:
    """Build a pool on the fake spawner from a ``CLASS:TOTAL:WARM,...`` string."""

    def make(classes: str = "cpu.small:2:1", on_lost: OnLost | None = None) -> ExecutorPool:
        return ExecutorPool(parse_classes(classes), spawner, on_lost=on_lost)  # type: ignore[arg-type]

    return make


@pytest.fixture
def pool(new_pool: Callable[..., ExecutorPool], monkeypatch: pytest.MonkeyPatch) -> ExecutorPool:
    """The miner's one pool (``get_pool()``): ``cpu.small`` with 2 executors, 1 kept warm."""
    pool = new_pool("cpu.small:2:1")
    monkeypatch.setattr(miner.pool, "_pool", pool)
    return pool


def slot_of(pool: ExecutorPool, keypair: Keypair) -> ExecutorSlot:
    return pool.slots[keypair.hotkey]


# -- websockets ------------------------------------------------------------------------------------


class Peer:
    """One websocket connection to a consumer, seen from the party that dialled it."""

    def __init__(self, communicator: WebsocketCommunicator, receives: TypeAdapter[Any]) -> None:
        self.communicator = communicator
        self.receives = receives
        self.challenge: AuthChallenge | None = None

    async def send(self, frame: Message | dict[str, Any] | str) -> None:
        if isinstance(frame, Message):
            frame = frame.encode()
        elif isinstance(frame, dict):
            frame = json.dumps(frame)
        await self.communicator.send_to(text_data=frame)

    async def receive(self, *, skip: tuple[str, ...] = ()) -> Any:
        """The next frame, parsed; frames of the types in ``skip`` are passed over."""
        while True:
            message = parse_frame(await self.communicator.receive_from(WAIT_S), self.receives)
            if message.type not in skip:
                return message

    async def expect_nothing(self, timeout: float = QUIET_S, *, skip: tuple[str, ...] = ()) -> None:
        while not await self.communicator.receive_nothing(timeout):
            message = parse_frame(await self.communicator.receive_from(WAIT_S), self.receives)
            assert message.type in skip, f"unexpected frame: {message!r}"

    async def closed_with(self) -> tuple[int, str]:
        output = await self.communicator.receive_output(WAIT_S)
        assert output["type"] == "websocket.close", output
        return output.get("code", 1000), output.get("reason", "")

    async def disconnect(self, code: int = 1000) -> None:
        await self.communicator.disconnect(code)


Dial = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def dial(pool: ExecutorPool) -> AsyncIterator[Dial]:
    """Open a websocket; authenticate with ``keypair`` as ``role`` unless ``keypair`` is None.

    It needs the pool: connections end (at teardown) before the pool's spawner is closed.
    """
    communicators: list[WebsocketCommunicator] = []

    async def open_(path: str, keypair: Keypair | None, role: str, receives: TypeAdapter[Any]) -> Peer:
        communicator = WebsocketCommunicator(APP, path)
        communicators.append(communicator)
        connected, _ = await communicator.connect(WAIT_S)
        assert connected
        peer = Peer(communicator, receives)
        peer.challenge = parse_frame(await communicator.receive_from(WAIT_S), AUTH_FROM_SERVER)
        assert isinstance(peer.challenge, AuthChallenge)
        assert peer.challenge.server_hotkey == own_keypair().hotkey
        if keypair is not None:
            client = ClientHandshake(keypair, role, server_hotkey=own_keypair().hotkey)
            await peer.send(client.receive_challenge(peer.challenge))
            client.receive_ok(parse_frame(await communicator.receive_from(WAIT_S), AUTH_FROM_SERVER))
        return peer

    yield open_
    # Together: on a Redis layer each consumer takes the communicator's whole 1 s timeout to stop.
    await asyncio.gather(*(communicator.disconnect() for communicator in communicators))


@pytest.fixture
def dial_validator(dial: Dial) -> Dial:
    async def open_(keypair: Keypair | None = VALIDATOR, role: str = "validator") -> Peer:
        return await dial("/ws/validator/", keypair, role, MINER_TO_VALIDATOR)

    return open_


@pytest.fixture
def dial_executor(dial: Dial) -> Dial:
    async def open_(keypair: Keypair | None, role: str = "executor") -> Peer:
        return await dial("/ws/executor/", keypair, role, MINER_TO_EXECUTOR)

    return open_


@pytest.fixture
def validators_allowed() -> Iterator[None]:
    with override_settings(MINER_VALIDATOR_HOTKEYS=[VALIDATOR.hotkey, OTHER_VALIDATOR.hotkey]):
        yield


@pytest.fixture(autouse=True)
def own_channel_layer() -> Iterator[None]:
    """A fresh channel layer per test: a Redis layer's locks belong to the event loop that made them."""
    with override_settings(CHANNEL_LAYERS=settings.CHANNEL_LAYERS):
        yield
