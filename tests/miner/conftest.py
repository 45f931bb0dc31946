"""Helpers for the miner's tests: a stand-in spawner, a pool built on it, websocket peers.

``FakeSpawner`` stands in for ``ForkServerSpawner``, which starts real processes (the
integration tests cover it). It records the one-time keypair of every executor it was asked to
start, so a test can then dial ``ws/executor/`` with that key, as the executor would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings
from pydantic import TypeAdapter

import miner.relay
from miner.executors.classes import parse_classes
from miner.executors.pool import ExecutorPool, ExecutorSlot
from miner.routing import websocket_urlpatterns
from protocol.keys import Keypair
from protocol.messages import (
    MINER_TO_EXECUTOR,
    MINER_TO_VALIDATOR,
)
from tests.ws import WAIT_S, Peer, close_all, open_peer

VALIDATOR = Keypair.generate()
OTHER_VALIDATOR = Keypair.generate()
STRANGER = Keypair.generate()


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
        self.gpus: dict[str, tuple[str, ...]] = {}  # hotkey → the GPUs it was started with
        self.processes: dict[str, FakeProcess] = {}
        self.fail = False
        self.attempts = 0
        self._spawned: asyncio.Queue[Keypair] = asyncio.Queue()

    async def spawn(self, keypair: Keypair, gpus: tuple[str, ...] = ()) -> FakeProcess:
        self.attempts += 1
        if self.fail:
            raise OSError("no executors today")
        process = FakeProcess(1000 + len(self.keypairs))
        self.keypairs.append(keypair)
        self.gpus[keypair.hotkey] = gpus
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
    monkeypatch.setattr(miner.relay, "_pool", pool)
    monkeypatch.setattr(miner.relay, "_holds", None)  # built on first use, from this test's settings
    return pool


def slot_of(pool: ExecutorPool, keypair: Keypair) -> ExecutorSlot:
    return pool.slots[keypair.hotkey]


# -- websockets ------------------------------------------------------------------------------------


Dial = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def dial(pool: ExecutorPool) -> AsyncIterator[Dial]:
    """Open a websocket (see ``tests.ws.open_peer``). It needs the pool: connections end before its spawner."""
    opened: list[WebsocketCommunicator] = []

    async def open_(path: str, keypair: Keypair | None, role: str, receives: TypeAdapter[Any]) -> Peer:
        return await open_peer(APP, path, keypair, role, receives, opened)

    yield open_
    await close_all(opened)


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
