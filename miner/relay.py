"""The miner process's one executor pool, built lazily from settings inside the running loop, and
the relay of frames between its consumers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.conf import settings

from miner.executors.classes import parse_classes
from miner.executors.gpus import GpuPlan, GpuShortfall, check_gpus
from miner.executors.pool import ExecutorPool, ExecutorSlot, SlotState
from miner.executors.spawner import ForkServerSpawner, SpawnConfig
from miner.holds import JobHolds
from miner.ports import PortPool, parse_port_range
from miner.status import miner_status
from node.identity import own_keypair
from protocol.messages import JobCancel, JobFailure, JobInfraFailed, Message
from protocol.status import InfraFailureReason, Stage

__all__ = [
    "check_gpus_at_start",
    "get_holds",
    "get_pool",
    "relay_to_validator",
    "send_event",
    "stop_job",
    "to_executor",
]

log = logging.getLogger("grid.miner")
_pool: ExecutorPool | None = None
_holds: JobHolds | None = None
_gpus: tuple[GpuPlan | None] | None = None  # planned once: (plan,)
FULL_PATIENCE_S = 30.0


async def send_event(channel: str, event: dict[str, Any]) -> None:
    """Send ``event`` to one of this process's consumers; while its queue is full, wait.

    A channel holds at most ``CHANNEL_CAPACITY`` events and a full one raises ``ChannelFull``:
    the event would be lost. A validator's connection can fall behind (it stores receipts between
    frames) while every executor of the miner relays to it, and a dropped ``job.finished`` left
    its job at ``execution_done`` until the validator's stage timer ran out and ran it again
    elsewhere. Waiting slows only the executor consumer whose frame this is (it relays one frame
    at a time, so a job's frames keep their order).

    Raises:
        ChannelFull: still full after :data:`FULL_PATIENCE_S` (its consumer is stuck).
    """
    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    deadline, delay = loop.time() + FULL_PATIENCE_S, 0.01
    while True:
        try:
            await layer.send(channel, event)
            return
        except ChannelFull:
            if loop.time() >= deadline:
                log.error("channel %s stayed full for %gs: %s dropped", channel, FULL_PATIENCE_S, event.get("type"))
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


async def relay_to_validator(slot: ExecutorSlot, frame: str) -> None:
    """Send ``frame`` to the validator of ``slot``'s job, and keep it for a replay: while that
    validator is away (its job held), the frame waits for it there."""
    slot.reported.append(frame)
    if slot.validator_channel is not None:
        await send_event(slot.validator_channel, {"type": "validator.forward", "frame": frame})


async def to_executor(slot: ExecutorSlot, message: Message) -> None:
    await send_event(str(slot.channel_name), {"type": "executor.forward", "frame": message.encode()})


async def stop_job(slot: ExecutorSlot, why: str) -> None:
    """End ``slot``'s job here: cancel it on its executor (or kill one not connected yet) and free the slot."""
    if slot.state is SlotState.DONE:
        return  # its executor is gone already, and the slot with it
    slot.finished = True
    miner_status().job_cancelled(str(slot.job_id), why)
    if slot.connected:
        await to_executor(slot, JobCancel(job_id=str(slot.job_id), reason=why))
    elif slot.process is not None and slot.process.returncode is None:
        slot.process.kill()
    get_pool().release(slot)


async def _executor_lost(slot: ExecutorSlot, why: str) -> None:
    failure = JobFailure(
        reason=InfraFailureReason.EXECUTOR_START_FAILED, message=why, stage=Stage.EXECUTOR_START, reported_by="miner"
    )
    lost = JobInfraFailed(job_id=str(slot.job_id), failure=failure)
    miner_status().job_reported(lost)
    await relay_to_validator(slot, lost.encode())


def get_holds() -> JobHolds:
    """The jobs this miner keeps for validators whose connection dropped (miner/holds.py)."""
    global _holds
    if _holds is None:
        _holds = JobHolds(settings.MINER_RESUME_GRACE_S, lambda slot: stop_job(slot, "the validator did not come back"))
    return _holds


def _gpu_plan() -> GpuPlan | None:
    global _gpus
    if _gpus is None:
        _gpus = (check_gpus(parse_classes(settings.MINER_EXECUTOR_CLASSES), python=settings.MINER_EXECUTOR_PYTHON),)
    return _gpus[0]


def check_gpus_at_start() -> None:
    """Bind the GPU classes' executors to this machine's GPUs, or stop the start saying what is short.

    Raises:
        SystemExit: the machine has fewer fitting GPUs than ``GRID_EXECUTOR_CLASSES`` needs.
    """
    try:
        _gpu_plan()
    except GpuShortfall as exc:
        log.error("cannot start: %s", exc)
        raise SystemExit(f"miner: cannot start: {exc}") from None


def get_pool() -> ExecutorPool:
    global _pool
    if _pool is None:
        spawner = ForkServerSpawner(
            SpawnConfig(
                miner_url=settings.MINER_EXECUTOR_URL,
                miner_hotkey=own_keypair().hotkey,
                python=settings.MINER_EXECUTOR_PYTHON,
                runtime=settings.MINER_EXECUTOR_RUNTIME,
                work_root=settings.MINER_EXECUTOR_WORK_ROOT,
                max_output=settings.MINER_EXECUTOR_MAX_OUTPUT,
                max_jobs=settings.MINER_EXECUTOR_MAX_JOBS,
            )
        )
        ports = PortPool(parse_port_range(settings.MINER_STREAMING_PORTS))
        _pool = ExecutorPool(
            parse_classes(settings.MINER_EXECUTOR_CLASSES),
            spawner,
            on_lost=_executor_lost,
            ports=ports,
            gpus=_gpu_plan(),
            max_jobs=settings.MINER_EXECUTOR_MAX_JOBS,
        )
    return _pool
