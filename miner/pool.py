"""The miner process's one executor pool, built lazily from settings inside the running loop."""

from __future__ import annotations

from channels.layers import get_channel_layer
from django.conf import settings

from grid.identity import own_keypair
from miner.executors.classes import parse_classes
from miner.executors.pool import ExecutorPool, ExecutorSlot
from miner.executors.spawner import ForkServerSpawner, SpawnConfig
from miner.ports import PortPool, parse_port_range
from miner.status import miner_status
from protocol.messages import JobFailure, JobInfraFailed
from protocol.status import InfraFailureReason, Stage

__all__ = ["get_pool", "relay_to_validator"]

_pool: ExecutorPool | None = None


async def relay_to_validator(slot: ExecutorSlot, frame: str) -> None:
    if slot.validator_channel is not None:
        await get_channel_layer().send(slot.validator_channel, {"type": "validator.forward", "frame": frame})


async def _executor_lost(slot: ExecutorSlot, why: str) -> None:
    failure = JobFailure(
        reason=InfraFailureReason.EXECUTOR_START_FAILED, message=why, stage=Stage.EXECUTOR_START, reported_by="miner"
    )
    lost = JobInfraFailed(job_id=str(slot.job_id), failure=failure)
    miner_status().job_reported(lost)
    await relay_to_validator(slot, lost.encode())


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
            )
        )
        ports = PortPool(parse_port_range(settings.MINER_STREAMING_PORTS))
        _pool = ExecutorPool(
            parse_classes(settings.MINER_EXECUTOR_CLASSES), spawner, on_lost=_executor_lost, ports=ports
        )
    return _pool
