"""Which GPUs each executor of a GPU class gets (docs/gpu.md).

At start the miner discovers its GPUs (:func:`discover`, which runs ``python -m executor.gpus
--json`` with the executors' Python: NVML or ``nvidia-smi``) and :func:`plan_gpus`
binds every executor of every GPU class to specific device UUIDs: a class's ``gpus`` devices per
executor, each with at least the class's ``gpu_memory_mb`` (within :data:`MEMORY_TOLERANCE`:
a "24 GB" card reports 24564 MB) and its ``gpu_model`` when it names one. A GPU belongs to one
class only, and serves one executor at a time unless the class sets ``gpu_share=N``. A machine
with fewer fitting GPUs than its classes need refuses to start (:class:`GpuShortfall`, naming
each class's shortfall), rather than run GPU jobs without their GPU.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from dataclasses import dataclass, field, replace

from miner.executors.classes import ClassConfig

__all__ = ["MEMORY_TOLERANCE", "Gpu", "GpuPlan", "GpuShortfall", "check_gpus", "discover", "plan_gpus"]

log = logging.getLogger("grid.miner.gpus")
MEMORY_TOLERANCE = 0.02
DISCOVERY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Gpu:
    """One GPU of the machine, as ``python -m executor.gpus --json`` reports it."""

    index: int
    uuid: str
    name: str
    memory_mb: int


class GpuShortfall(ValueError):
    """The machine has fewer fitting GPUs than the executor classes need; the message says which."""


@dataclass(frozen=True)
class GpuPlan:
    """For each GPU class, one tuple of device UUIDs per executor (``total`` of them)."""

    groups: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    gpus: dict[str, Gpu] = field(default_factory=dict)

    def describe(self) -> list[str]:
        return [
            f"{name}: executor {i} → {', '.join(f'GPU {self.gpus[u].index}' for u in group)}"
            for name, groups in self.groups.items()
            for i, group in enumerate(groups)
        ]


def _unfit(config: ClassConfig, gpu: Gpu) -> str | None:
    """Why ``gpu`` cannot serve executors of ``config``, or ``None``."""
    assert config.spec is not None
    floor = config.spec.gpu_memory_mb * (1 - MEMORY_TOLERANCE)
    if gpu.memory_mb < floor:
        return f"{gpu.memory_mb} MB < {config.spec.gpu_memory_mb} MB"
    model = config.spec.gpu_model
    if model and model.lower() not in gpu.name.lower():
        return f"{gpu.name!r} is not a {model!r}"
    return None


def plan_gpus(classes: dict[str, ClassConfig], gpus: list[Gpu]) -> GpuPlan:
    """Bind every executor of every GPU class to devices of ``gpus``.

    Raises:
        GpuShortfall: some class cannot have its GPUs; every class short is named, with what it
            needs and what each GPU of the machine lacks.
    """
    taken: set[str] = set()
    groups: dict[str, list[tuple[str, ...]]] = {}
    problems = []
    for name, config in classes.items():
        if config.gpus == 0 or config.total == 0:
            continue
        spec = config.spec
        assert spec is not None
        bundles = math.ceil(config.total / config.gpu_share)
        needed = bundles * config.gpus
        fitting = [gpu for gpu in gpus if gpu.uuid not in taken and _unfit(config, gpu) is None]
        if len(fitting) < needed:
            want = f"≥ {spec.gpu_memory_mb} MB" + (f", model {spec.gpu_model!r}" if spec.gpu_model else "")
            share = f", {config.gpu_share} executors per GPU" if config.gpu_share > 1 else ""
            why = "; ".join(
                f"GPU {gpu.index} {'is taken by another class' if gpu.uuid in taken else _unfit(config, gpu)}"
                for gpu in gpus
                if gpu not in fitting
            )
            problems.append(
                f"executor class {name!r} needs {needed} GPU(s) with {want} "
                f"({config.total} executor(s) × {config.gpus} GPU(s){share}), "
                f"but only {len(fitting)} of this machine's {len(gpus)} GPU(s) fit" + (f" ({why})" if why else "")
            )
            continue
        chosen = fitting[:needed]
        taken.update(gpu.uuid for gpu in chosen)
        per_bundle = [
            tuple(gpu.uuid for gpu in chosen[b * config.gpus : (b + 1) * config.gpus]) for b in range(bundles)
        ]
        groups[name] = [per_bundle[i // config.gpu_share] for i in range(config.total)]
    if problems:
        raise GpuShortfall("; ".join(problems))
    return GpuPlan(groups=groups, gpus={gpu.uuid: gpu for gpu in gpus})


def with_discovered(classes: dict[str, ClassConfig], plan: GpuPlan) -> dict[str, ClassConfig]:
    """The classes, their specs completed from the GPUs they were given: the model (for the
    manifest, so validators can route on it) and, where the class left it out, the memory."""
    completed = dict(classes)
    for name, groups in plan.groups.items():
        config = classes[name]
        assert config.spec is not None
        bound = [plan.gpus[uuid] for uuid in {uuid for group in groups for uuid in group}]
        models = {gpu.name for gpu in bound}
        update: dict[str, object] = {}
        if len(models) == 1:
            update["gpu_model"] = models.pop()
        if not config.spec.gpu_memory_mb:
            update["gpu_memory_mb"] = min(gpu.memory_mb for gpu in bound) // config.gpu_share
        completed[name] = replace(config, spec=config.spec.model_copy(update=update))
    return completed


def discover(python: str = sys.executable) -> tuple[list[Gpu], list[str]]:
    """The machine's GPUs, and why none were found when none were (``python -m executor.gpus --json``)."""
    argv = [python, "-m", "executor.gpus", "--json"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=DISCOVERY_TIMEOUT_S, check=False)
        found = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return [], [f"GPU discovery ({' '.join(argv)}) failed: {exc}"]
    if not isinstance(found, dict):
        return [], [f"GPU discovery ({' '.join(argv)}) exited with {done.returncode}: {done.stderr.strip()[-500:]}"]
    return [Gpu(**gpu) for gpu in found.get("gpus", [])], list(found.get("notes", []))


def check_gpus(
    classes: dict[str, ClassConfig], gpus: list[Gpu] | None = None, python: str = sys.executable
) -> GpuPlan | None:
    """Discover the GPUs (unless given) and plan them; ``None`` when no class needs a GPU.

    Raises:
        GpuShortfall: as :func:`plan_gpus`, with why discovery found nothing when it did not.
    """
    if not any(config.gpus and config.total for config in classes.values()):
        return None
    notes: list[str] = []
    if gpus is None:
        gpus, notes = discover(python)
    try:
        plan = plan_gpus(classes, gpus)
    except GpuShortfall as exc:
        raise GpuShortfall(str(exc) + "".join(f"; {note}" for note in notes)) from None
    for line in plan.describe():
        log.info("GPU binding %s", line)
    return plan
