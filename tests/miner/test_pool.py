"""The executor pool (miner/executors/pool.py): warm executors, reservations, manifest, release."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from miner.executors.classes import ClassConfig
from miner.executors.pool import START_RETRY_INITIAL_S, ExecutorPool, ExecutorSlot, SlotState
from protocol.classes import STANDARD_CLASSES
from protocol.messages import ClassCapacity

from .conftest import FakeSpawner, settle

NewPool = Callable[..., ExecutorPool]


class LostRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[ExecutorSlot, str]] = []

    async def __call__(self, slot: ExecutorSlot, why: str) -> None:
        self.calls.append((slot, why))


def reserve(pool: ExecutorPool, job_id: str, executor_class: str = "cpu.small") -> ExecutorSlot | None:
    return pool.reserve(job_id, executor_class, f"validator-channel-{job_id}", f'{{"job": "{job_id}"}}')


def classes_of(pool: ExecutorPool) -> Counter[str]:
    return Counter(slot.executor_class for slot in pool.slots.values())


# -- warm executors --------------------------------------------------------------------------------


async def test_ensure_warm_starts_the_warm_count_of_every_class(new_pool: NewPool, spawner: FakeSpawner) -> None:
    pool = new_pool("cpu.small:4:2,cpu.large:2:0,gpu.24gb:1:1")
    pool.ensure_warm()
    await settle()
    assert classes_of(pool) == {"cpu.small": 2, "gpu.24gb": 1}
    assert {keypair.hotkey for keypair in spawner.keypairs} == set(pool.slots)
    for slot in pool.slots.values():
        assert slot.state is SlotState.STARTING and slot.job_id is None and not slot.connected
        assert slot.process is spawner.processes[slot.hotkey]


async def test_ensure_warm_again_starts_nothing_more(new_pool: NewPool, spawner: FakeSpawner) -> None:
    pool = new_pool("cpu.small:4:2")
    pool.ensure_warm()
    pool.ensure_warm()
    await settle()
    assert len(pool.slots) == len(spawner.keypairs) == 2


async def test_warm_executors_never_exceed_the_class_total(new_pool: NewPool, spawner: FakeSpawner) -> None:
    pool = new_pool("cpu.small:3:2")
    pool.ensure_warm()
    assert reserve(pool, "j1") is not None
    assert reserve(pool, "j2") is not None
    await settle()
    assert len(pool.slots) == len(spawner.keypairs) == 3
    assert sum(1 for slot in pool.slots.values() if slot.job_id is None) == 1


async def test_a_warm_count_above_the_total_is_capped(spawner: FakeSpawner) -> None:
    pool = ExecutorPool({"x": ClassConfig("x", total=1, warm=3)}, spawner)  # type: ignore[arg-type]
    pool.ensure_warm()
    await settle()
    assert len(spawner.keypairs) == 1


# -- reservations ----------------------------------------------------------------------------------


async def test_reserve_prefers_an_idle_connected_executor(new_pool: NewPool, spawner: FakeSpawner) -> None:
    pool = new_pool("cpu.small:3:2")
    pool.ensure_warm()
    await settle()
    starting, connected = spawner.keypairs
    pool.attach(connected.hotkey, "executor-channel")
    slot = reserve(pool, "j1")
    assert slot is pool.slots[connected.hotkey]
    assert slot.state is SlotState.RESERVED
    assert (slot.job_id, slot.validator_channel, slot.initial_frame) == ("j1", "validator-channel-j1", '{"job": "j1"}')
    assert pool.jobs == {"j1": slot}
    assert pool.slots[starting.hotkey].job_id is None


async def test_reserve_takes_a_starting_executor_when_none_is_idle(new_pool: NewPool, spawner: FakeSpawner) -> None:
    pool = new_pool("cpu.small:2:1")
    pool.ensure_warm()
    await settle()
    [warm] = spawner.keypairs
    slot = reserve(pool, "j1")
    assert slot is not None and slot.hotkey == warm.hotkey
    assert slot.state is SlotState.STARTING, "it becomes reserved when it connects"
    await settle()
    assert len(spawner.keypairs) == 2, "a replacement is warmed"
    assert pool.attach(warm.hotkey, "executor-channel").state is SlotState.RESERVED


async def test_reserve_spawns_a_cold_executor_when_none_waits_and_room_remains(
    new_pool: NewPool, spawner: FakeSpawner
) -> None:
    pool = new_pool("cpu.small:2:0")
    slot = reserve(pool, "j1")
    await settle()
    assert slot is not None and slot.job_id == "j1" and slot.state is SlotState.STARTING
    assert [keypair.hotkey for keypair in spawner.keypairs] == [slot.hotkey]


async def test_reserve_returns_none_when_the_class_is_full(new_pool: NewPool, spawner: FakeSpawner) -> None:
    pool = new_pool("cpu.small:1:0")
    assert reserve(pool, "j1") is not None
    assert reserve(pool, "j2") is None
    await settle()
    assert len(spawner.keypairs) == 1
    assert list(pool.jobs) == ["j1"]


async def test_reserve_refuses_an_unknown_class_and_a_job_already_reserved(new_pool: NewPool) -> None:
    pool = new_pool("cpu.small:2:0")
    assert reserve(pool, "j1", "gpu.24gb") is None
    first = reserve(pool, "j1")
    assert first is not None
    assert reserve(pool, "j1") is None
    assert pool.jobs == {"j1": first}


async def test_manifest_counts_free_executors_per_class(new_pool: NewPool) -> None:
    pool = new_pool("cpu.small:4:2,gpu.24gb:1:0")
    assert pool.manifest() == {
        "cpu.small": ClassCapacity(total=4, free=4, spec=STANDARD_CLASSES["cpu.small"]),
        "gpu.24gb": ClassCapacity(total=1, free=1, spec=STANDARD_CLASSES["gpu.24gb"]),
    }
    pool.ensure_warm()
    assert pool.manifest()["cpu.small"] == ClassCapacity(total=4, free=4, spec=STANDARD_CLASSES["cpu.small"]), (
        "warm executors are free"
    )
    reserve(pool, "j1")
    reserve(pool, "j2", "gpu.24gb")
    assert pool.manifest() == {
        "cpu.small": ClassCapacity(total=4, free=3, spec=STANDARD_CLASSES["cpu.small"]),
        "gpu.24gb": ClassCapacity(total=1, free=0, spec=STANDARD_CLASSES["gpu.24gb"]),
    }


async def test_is_expected_only_for_a_started_executor_not_yet_connected(
    new_pool: NewPool, spawner: FakeSpawner
) -> None:
    pool = new_pool("cpu.small:2:1")
    pool.ensure_warm()
    await settle()
    [keypair] = spawner.keypairs
    assert pool.is_expected(keypair.hotkey)
    assert not pool.is_expected("ab" * 32)
    slot = pool.attach(keypair.hotkey, "executor-channel")
    assert slot.state is SlotState.IDLE and slot.connected
    assert not pool.is_expected(keypair.hotkey), "one connection per one-time key"


# -- release ---------------------------------------------------------------------------------------


async def test_release_frees_the_capacity_and_warms_a_replacement(new_pool: NewPool, spawner: FakeSpawner) -> None:
    pool = new_pool("cpu.small:1:1")
    pool.ensure_warm()
    slot = reserve(pool, "j1")
    await settle()
    assert slot is not None and len(spawner.keypairs) == 1
    assert pool.manifest()["cpu.small"].free == 0

    pool.release(slot)
    await settle()
    assert slot.state is SlotState.DONE
    assert slot.hotkey not in pool.slots and pool.jobs == {}
    assert pool.manifest()["cpu.small"] == ClassCapacity(total=1, free=1, spec=STANDARD_CLASSES["cpu.small"])
    assert len(spawner.keypairs) == 2
    [replacement] = pool.slots.values()
    assert replacement.hotkey == spawner.keypairs[1].hotkey and replacement.job_id is None


async def test_reserve_and_release_tell_the_listeners(new_pool: NewPool) -> None:
    pool = new_pool("cpu.small:1:0")
    changes: list[dict[str, ClassCapacity]] = []
    pool.on_change.append(lambda: changes.append(pool.manifest()))
    slot = reserve(pool, "j1")
    assert slot is not None
    pool.release(slot)
    assert changes == [
        {"cpu.small": ClassCapacity(total=1, free=0, spec=STANDARD_CLASSES["cpu.small"])},
        {"cpu.small": ClassCapacity(total=1, free=1, spec=STANDARD_CLASSES["cpu.small"])},
    ]


async def test_release_twice_keeps_a_later_reservation_of_the_same_job(new_pool: NewPool) -> None:
    pool = new_pool("cpu.small:2:0")
    old = reserve(pool, "j1")
    assert old is not None
    pool.release(old)
    new = reserve(pool, "j1")
    pool.release(old)
    assert pool.jobs == {"j1": new}


# -- executors lost before connecting --------------------------------------------------------------


async def test_a_reserved_executor_exiting_before_it_connects_is_reported_lost(
    new_pool: NewPool, spawner: FakeSpawner
) -> None:
    lost = LostRecorder()
    pool = new_pool("cpu.small:1:0", on_lost=lost)
    slot = reserve(pool, "j1")
    await settle()
    assert slot is not None
    spawner.processes[slot.hotkey].exit(3)
    await settle()
    assert lost.calls == [(slot, "executor exited with code 3 before connecting")]
    assert pool.jobs == {} and slot.hotkey not in pool.slots


async def test_a_warm_executor_exiting_before_it_connects_is_replaced_after_a_pause(
    new_pool: NewPool, spawner: FakeSpawner
) -> None:
    """No job was waiting on it, so nobody is told; its replacement waits out the start backoff."""
    lost = LostRecorder()
    pool = new_pool("cpu.small:1:1", on_lost=lost)
    pool.ensure_warm()
    await settle()
    [first] = spawner.keypairs
    spawner.processes[first.hotkey].exit(1)
    await settle()
    assert lost.calls == []
    assert first.hotkey not in pool.slots and len(pool.slots) == 0
    await asyncio.sleep(START_RETRY_INITIAL_S + 0.1)
    await settle()
    assert len(pool.slots) == 1 and len(spawner.keypairs) == 2


async def test_an_executor_exiting_after_it_connected_is_left_to_its_connection(
    new_pool: NewPool, spawner: FakeSpawner
) -> None:
    lost = LostRecorder()
    pool = new_pool("cpu.small:1:0", on_lost=lost)
    slot = reserve(pool, "j1")
    await settle()
    assert slot is not None
    pool.attach(slot.hotkey, "executor-channel")
    spawner.processes[slot.hotkey].exit(0)
    await settle()
    assert lost.calls == [] and pool.jobs == {"j1": slot}


async def test_a_spawn_failure_for_a_reservation_is_reported_lost(new_pool: NewPool, spawner: FakeSpawner) -> None:
    lost = LostRecorder()
    pool = new_pool("cpu.small:1:0", on_lost=lost)
    spawner.fail = True
    slot = reserve(pool, "j1")
    await settle()
    assert slot is not None
    assert lost.calls == [(slot, "could not start an executor: no executors today")]
    assert pool.jobs == {} and pool.slots == {}


async def test_a_spawner_that_keeps_failing_is_not_retried_in_a_tight_loop(
    new_pool: NewPool, spawner: FakeSpawner
) -> None:
    pool = new_pool("cpu.small:2:1")
    spawner.fail = True
    try:
        pool.ensure_warm()
        for _ in range(50):
            await asyncio.sleep(0)
        assert spawner.attempts <= 5
    finally:
        pool.classes = {}  # stop the re-warming, whatever the outcome
        await settle()


async def test_kill_all_kills_every_live_executor(new_pool: NewPool, spawner: FakeSpawner) -> None:
    pool = new_pool("cpu.small:2:2")
    pool.ensure_warm()
    await settle()
    pool.classes = {}  # nothing to re-warm: this is shutdown
    pool.kill_all()
    assert [process.returncode for process in spawner.processes.values()] == [-9, -9]
