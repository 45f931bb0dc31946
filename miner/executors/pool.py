"""The executor pool: capacity per class, warm executors, reservations (DESIGN.md §1, §5).

One pool per miner process, shared by its consumers. An executor *slot* is one job's hold on
an executor process (or a process waiting for a job). Slots move ``starting → idle → reserved``
and end ``done``; a reservation that finds no idle executor spawns a cold one if the class has
room. Whenever a warm executor is taken, a replacement is started so the next job does not pay
the ~100 ms of a Python start.

Executors serve job after job: when an executor reports how its job ended (``job.finished`` /
``job.failed``), :meth:`ExecutorPool.recycle` ends that job's slot and gives the same connected
process a fresh idle one, until it has served ``max_jobs`` (then it ends by itself, and a new
one is started). The ended slot keeps its job's frames for a validator that comes back.

With a :class:`~miner.executors.gpus.GpuPlan`, each executor of a GPU class is started bound to
one of its class's device groups not held by another live executor (``slot.gpus``): the fork
server hands them to that executor alone (``GRID_EXECUTOR_GPUS``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from miner.executors.classes import ClassConfig
from miner.executors.gpus import GpuPlan, with_discovered
from miner.executors.spawner import ExecutorProcess, ForkServerSpawner
from miner.ports import PortPool
from protocol.keys import Keypair
from protocol.messages import ClassCapacity

__all__ = ["ExecutorPool", "ExecutorSlot", "SlotState"]

log = logging.getLogger("grid.miner.pool")
START_RETRY_INITIAL_S = 0.5
START_RETRY_MAX_S = 30.0


class SlotState(StrEnum):
    STARTING = "starting"
    IDLE = "idle"
    RESERVED = "reserved"
    DONE = "done"


@dataclass(eq=False)
class ExecutorSlot:
    executor_class: str
    hotkey: str
    state: SlotState = SlotState.STARTING
    channel_name: str | None = None
    job_id: str | None = None
    validator_channel: str | None = None  # the reserving validator's connection; None while it is away
    validator_hotkey: str | None = None
    initial_frame: str | None = None
    gateway_port: int | None = None
    finished: bool = False
    full_forwarded: bool = False  # job.full went to the executor: a resent one is not sent again
    # Every frame of the attempt sent (or due) to the validator, in order: replayed when it
    # reconnects after its connection dropped (miner/holds.py).
    reported: list[str] = field(default_factory=list, repr=False)
    process: ExecutorProcess | None = field(default=None, repr=False)
    gpus: tuple[str, ...] = ()  # the device UUIDs this executor is bound to
    gpu_group: int | None = None  # which of its class's groups (GpuPlan.groups) they are
    served: int = 0  # jobs this executor process ended before this slot's

    @property
    def connected(self) -> bool:
        return self.channel_name is not None


class ExecutorPool:
    def __init__(
        self,
        classes: dict[str, ClassConfig],
        spawner: ForkServerSpawner,
        on_lost: Callable[[ExecutorSlot, str], Awaitable[None]] | None = None,
        ports: PortPool | None = None,
        gpus: GpuPlan | None = None,
        max_jobs: int = 1,
    ) -> None:
        """``on_lost(slot, why)`` is awaited when an executor reserved for a job dies before connecting.

        ``ports``: the public ports for streaming jobs' gateways (none: this miner runs no streaming job).
        ``gpus``: which devices each executor of a GPU class gets (none: executors get no GPU);
        the classes' specs in the manifest then name the GPUs' model.
        ``max_jobs``: jobs one executor serves before it ends (its ``GRID_EXECUTOR_MAX_JOBS``).
        """
        self.max_jobs = max_jobs
        self.gpus = gpus
        self.classes = with_discovered(classes, gpus) if gpus is not None else classes
        self.ports = ports
        self.spawner = spawner
        self.on_lost = on_lost
        self.slots: dict[str, ExecutorSlot] = {}
        self.jobs: dict[str, ExecutorSlot] = {}
        self.on_change: list[Callable[[], None]] = []
        self._spawning: set[asyncio.Task[None]] = set()
        self._start_failures = 0
        self._warm_after = 0.0

    def __repr__(self) -> str:
        return f"<ExecutorPool {self.manifest()}>"

    # -- capacity ------------------------------------------------------------------------------

    def _slots_of(self, name: str) -> list[ExecutorSlot]:
        return [slot for slot in self.slots.values() if slot.executor_class == name]

    def manifest(self) -> dict[str, ClassCapacity]:
        result = {}
        for name, config in self.classes.items():
            taken = sum(1 for slot in self._slots_of(name) if slot.job_id is not None)
            result[name] = ClassCapacity(total=config.total, free=max(0, config.total - taken), spec=config.spec)
        return result

    def _changed(self) -> None:
        for callback in list(self.on_change):
            callback()

    # -- warm executors ------------------------------------------------------------------------

    def ensure_warm(self) -> None:
        """Start executors until each class has its warm count waiting, within its total."""
        if asyncio.get_running_loop().time() < self._warm_after:
            return
        for name, config in self.classes.items():
            slots = self._slots_of(name)
            waiting = sum(1 for slot in slots if slot.job_id is None)
            room = config.total - len(slots)
            for _ in range(max(0, min(config.warm - waiting, room))):
                self._start(name)

    def _start(self, executor_class: str) -> ExecutorSlot:
        keypair = Keypair.generate()
        slot = ExecutorSlot(executor_class=executor_class, hotkey=keypair.hotkey)
        self._bind_gpus(slot)
        self.slots[slot.hotkey] = slot
        task = asyncio.get_running_loop().create_task(self._spawn(slot, keypair))
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)
        return slot

    def _bind_gpus(self, slot: ExecutorSlot) -> None:
        """Give ``slot`` the first device group of its class no live executor holds."""
        groups = self.gpus.groups.get(slot.executor_class) if self.gpus is not None else None
        if not groups:
            return
        held = {other.gpu_group for other in self._slots_of(slot.executor_class)}
        # A class never has more live slots than groups (one per executor of its total).
        slot.gpu_group = next(i for i in range(len(groups)) if i not in held)
        slot.gpus = groups[slot.gpu_group]

    async def _spawn(self, slot: ExecutorSlot, keypair: Keypair) -> None:
        try:
            # Only a GPU executor's start names GPUs: a spawner that knows none starts CPU ones as before.
            devices = {"gpus": slot.gpus} if slot.gpus else {}
            slot.process = await self.spawner.spawn(keypair, **devices)
        except OSError as exc:
            log.exception("could not start an executor of class %s", slot.executor_class)
            await self._lost(slot, f"could not start an executor: {exc}")
            return
        code = await slot.process.wait()
        if not slot.connected and slot.hotkey in self.slots:
            # It died before it ever connected: nothing else will notice.
            log.error("executor %s exited with %s before connecting", slot.hotkey[:12], code)
            await self._lost(slot, f"executor exited with code {code} before connecting")

    async def _lost(self, slot: ExecutorSlot, why: str) -> None:
        # Executors that cannot start would otherwise be restarted as fast as they fail.
        self._start_failures += 1
        delay = min(START_RETRY_INITIAL_S * 2 ** (self._start_failures - 1), START_RETRY_MAX_S)
        loop = asyncio.get_running_loop()
        self._warm_after = loop.time() + delay
        loop.call_later(delay, self.ensure_warm)
        log.warning("executor start failed (%d in a row); warming paused for %.1fs", self._start_failures, delay)
        if slot.job_id is not None and self.on_lost is not None:
            await self.on_lost(slot, why)
        self.release(slot)

    # -- reservations --------------------------------------------------------------------------

    def reserve(
        self, job_id: str, executor_class: str, validator_channel: str, initial_frame: str
    ) -> ExecutorSlot | None:
        """Take an executor of ``executor_class`` for ``job_id``; ``None`` when the class is full."""
        if executor_class not in self.classes or job_id in self.jobs:
            return None
        slots = self._slots_of(executor_class)
        free = [slot for slot in slots if slot.job_id is None]
        ready = [slot for slot in free if slot.state is SlotState.IDLE]
        if ready:
            slot = ready[0]
        elif free:
            slot = free[0]
        elif len(slots) < self.classes[executor_class].total:
            slot = self._start(executor_class)
        else:
            return None
        slot.job_id, slot.validator_channel, slot.initial_frame = job_id, validator_channel, initial_frame
        if slot.state is SlotState.IDLE:
            slot.state = SlotState.RESERVED
        self.jobs[job_id] = slot
        self.ensure_warm()
        self._changed()
        return slot

    def is_expected(self, hotkey: str) -> bool:
        slot = self.slots.get(hotkey)
        return slot is not None and not slot.connected

    def attach(self, hotkey: str, channel_name: str) -> ExecutorSlot:
        slot = self.slots[hotkey]
        slot.channel_name = channel_name
        self._start_failures = 0
        slot.state = SlotState.RESERVED if slot.job_id else SlotState.IDLE
        return slot

    def recycle(self, slot: ExecutorSlot) -> ExecutorSlot | None:
        """``slot``'s executor reported how its job ended: the same process, idle again, in a new slot.

        ``None`` when it does not serve again: it has served ``max_jobs`` (it ends by itself, and
        ``slot`` is released when it disconnects) or the job was stopped here first (``slot`` is
        done already).
        """
        served = slot.served + 1
        if served >= self.max_jobs or slot.state is SlotState.DONE or self.slots.get(slot.hotkey) is not slot:
            return None
        fresh = ExecutorSlot(
            executor_class=slot.executor_class,
            hotkey=slot.hotkey,
            state=SlotState.IDLE,
            channel_name=slot.channel_name,
            process=slot.process,
            gpus=slot.gpus,
            gpu_group=slot.gpu_group,
            served=served,
        )
        self._end(slot)
        self.slots[fresh.hotkey] = fresh
        self._changed()
        return fresh

    def release(self, slot: ExecutorSlot) -> None:
        """Forget ``slot``: its process is gone or its job is over."""
        self._end(slot)
        if self.slots.get(slot.hotkey) is slot:
            del self.slots[slot.hotkey]
        self._changed()
        self.ensure_warm()

    def _end(self, slot: ExecutorSlot) -> None:
        slot.state = SlotState.DONE
        if self.ports is not None:
            self.ports.give_back(slot.gateway_port)
            slot.gateway_port = None
        if slot.job_id is not None and self.jobs.get(slot.job_id) is slot:
            del self.jobs[slot.job_id]

    def kill_all(self) -> None:
        for slot in list(self.slots.values()):
            if slot.process is not None and slot.process.returncode is None:
                slot.process.kill()
