"""The machine's NVIDIA GPUs: discovery, and whether a device still answers (docs/gpu.md).

Two sources, the first that works: NVML through the ``nvidia-ml-py`` package (``import pynvml``,
the ``gpu`` extra), else ``nvidia-smi --query-gpu=... --format=csv``. Neither there (or the
driver not loaded): the machine has no GPU as far as the grid is concerned.

The miner discovers its GPUs at start to bind executors to them (miner/executors/gpus.py); an
executor checks its own devices before it reports ready and, while its job runs, every
``GRID_EXECUTOR_GPU_CHECK_S`` seconds (a device that stops answering ends the job
``infra_failed`` with reason ``gpu_lost``). An executor's devices come in ``GRID_EXECUTOR_GPUS``
(UUIDs, comma-separated), set by the fork server for that executor alone.

``python -m executor.gpus`` prints what this machine has; with ``--json``, as JSON for the miner,
which runs it with the executors' Python at start (it may not import the executor package).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from executor.errors import GpuUnavailable
from protocol.status import InfraFailureReason

__all__ = [
    "GPUS_ENV",
    "Discovery",
    "Gpu",
    "GpuSource",
    "NvidiaSmi",
    "Nvml",
    "assigned",
    "discover",
    "find_source",
    "guarded",
    "sources",
    "watch",
]

T = TypeVar("T")

GPUS_ENV = "GRID_EXECUTOR_GPUS"
CHECK_EVERY_S = 5.0
SMI_TIMEOUT_S = 20.0
SMI_FIELDS = "index,uuid,name,memory.total"


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_mb: int

    def __str__(self) -> str:
        return f"GPU {self.index}: {self.name}, {self.memory_mb} MB ({self.uuid})"


class GpuSource(Protocol):
    """Where GPUs are read from: NVML or ``nvidia-smi`` (or a test's fake)."""

    name: str

    def gpus(self) -> list[Gpu]:
        """Every GPU of the machine; raises :class:`GpuUnavailable` when the source fails."""
        ...

    def check(self, uuids: Sequence[str]) -> None:
        """Raise :class:`GpuUnavailable` naming the first of ``uuids`` that does not answer."""
        ...


class Nvml:
    """NVML through a ``pynvml``-shaped module (``nvidia-ml-py``; tests pass ``FakeNvml``)."""

    name = "nvml"

    def __init__(self, module: Any) -> None:
        self.module = module

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self.module.NVMLError as exc:
            raise GpuUnavailable(f"NVML {what}: {exc}") from exc

    def gpus(self) -> list[Gpu]:
        nvml = self.module
        self._call("init", nvml.nvmlInit)
        try:
            found = []
            for index in range(self._call("device count", nvml.nvmlDeviceGetCount)):
                handle = self._call(f"device {index}", nvml.nvmlDeviceGetHandleByIndex, index)
                memory = self._call(f"memory of device {index}", nvml.nvmlDeviceGetMemoryInfo, handle)
                found.append(
                    Gpu(
                        index=index,
                        uuid=_text(self._call(f"uuid of device {index}", nvml.nvmlDeviceGetUUID, handle)),
                        name=_text(self._call(f"name of device {index}", nvml.nvmlDeviceGetName, handle)),
                        memory_mb=int(memory.total) // (1024 * 1024),
                    )
                )
            return found
        finally:
            _quietly(nvml.nvmlShutdown)

    def check(self, uuids: Sequence[str]) -> None:
        nvml = self.module
        self._call("init", nvml.nvmlInit)
        try:
            for uuid in uuids:
                try:
                    handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
                    nvml.nvmlDeviceGetMemoryInfo(handle)  # a lost device fails here (NVML_ERROR_GPU_IS_LOST)
                except nvml.NVMLError as exc:
                    raise GpuUnavailable(f"GPU {uuid} does not answer: {exc}") from exc
        finally:
            _quietly(nvml.nvmlShutdown)


class NvidiaSmi:
    """``nvidia-smi --query-gpu``: what the driver installs even where nvidia-ml-py is not."""

    name = "nvidia-smi"

    def __init__(self, command: str = "nvidia-smi") -> None:
        self.command = command

    def _query(self, *extra: str) -> list[list[str]]:
        argv = [self.command, f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits", *extra]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=SMI_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GpuUnavailable(f"{self.command} failed: {exc}") from exc
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            raise GpuUnavailable(f"{self.command} exited with {done.returncode}: {why[-1] if why else 'no output'}")
        return [[part.strip() for part in line.split(",")] for line in done.stdout.splitlines() if line.strip()]

    def gpus(self) -> list[Gpu]:
        found = []
        for row in self._query():
            if len(row) < 4:
                raise GpuUnavailable(f"{self.command} printed an unexpected line: {', '.join(row)!r}")
            index, uuid, memory = row[0], row[1], row[-1]
            name = ", ".join(row[2:-1])  # a model name may hold a comma
            try:
                found.append(Gpu(index=int(index), uuid=uuid, name=name, memory_mb=int(float(memory))))
            except ValueError:
                raise GpuUnavailable(f"{self.command} printed an unexpected line: {', '.join(row)!r}") from None
        return found

    def check(self, uuids: Sequence[str]) -> None:
        if not uuids:
            return
        try:
            answered = {row[1] for row in self._query(f"--id={','.join(uuids)}") if len(row) > 1}
        except GpuUnavailable as exc:
            raise GpuUnavailable(f"GPU(s) {', '.join(uuids)} do not answer: {exc}") from exc
        for uuid in uuids:
            if uuid not in answered:
                raise GpuUnavailable(f"GPU {uuid} does not answer: {self.command} does not list it")


@dataclass
class Discovery:
    """What discovery found, through which source, and why it found nothing when it did."""

    gpus: list[Gpu] = field(default_factory=list)
    source: str | None = None
    notes: list[str] = field(default_factory=list)


def sources(nvml: Any = None, smi: str | None = None) -> list[GpuSource]:
    """The sources to try, in order: NVML (``nvml``, else ``pynvml`` when installed), then
    ``nvidia-smi`` (``smi``, else the one on ``PATH``)."""
    found: list[GpuSource] = []
    if nvml is None:
        try:
            import pynvml  # the gpu extra: nvidia-ml-py
        except ImportError:
            pass
        else:
            nvml = pynvml
    if nvml is not None:
        found.append(Nvml(nvml))
    command = smi or shutil.which("nvidia-smi")
    if command:
        found.append(NvidiaSmi(command))
    return found


def find_source(nvml: Any = None, smi: str | None = None) -> GpuSource | None:
    """The first of :func:`sources`, or ``None`` on a machine with neither."""
    return next(iter(sources(nvml, smi)), None)


def discover(nvml: Any = None, smi: str | None = None) -> Discovery:
    """The machine's GPUs: from the first source that answers (NVML, then ``nvidia-smi``)."""
    result = Discovery()
    tried = sources(nvml, smi)
    if not tried:
        result.notes.append("neither nvidia-ml-py (pip install 'gridmarket[gpu]') nor nvidia-smi is installed")
    for source in tried:
        try:
            result.gpus, result.source = source.gpus(), source.name
            return result
        except GpuUnavailable as exc:
            result.notes.append(f"{source.name}: {exc}")
    return result


def assigned(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """This executor's GPUs (UUIDs) from ``GRID_EXECUTOR_GPUS``; empty for a CPU executor."""
    return tuple(part.strip() for part in environ.get(GPUS_ENV, "").split(",") if part.strip())


async def watch(source: GpuSource, uuids: Sequence[str], every_s: float = CHECK_EVERY_S) -> GpuUnavailable:
    """Check ``uuids`` every ``every_s`` until one stops answering; return that error (reason ``gpu_lost``)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(source.check, uuids)
        except GpuUnavailable as exc:
            return GpuUnavailable(str(exc), InfraFailureReason.GPU_LOST)


async def guarded(
    run: Callable[[asyncio.Event], Awaitable[T]],
    source: GpuSource,
    uuids: Sequence[str],
    stop: asyncio.Event | None = None,
    every_s: float = CHECK_EVERY_S,
) -> T:
    """Await ``run(halt)`` while :func:`watch` checks the GPUs; a GPU that stops answering sets ``halt``
    (the job is stopped) and, once ``run`` returns, raises that :class:`GpuUnavailable` (``gpu_lost``).
    ``stop`` set also sets ``halt``: the caller's own reason to end the job early."""
    halt = asyncio.Event()
    lost: list[GpuUnavailable] = []

    async def watching() -> None:
        lost.append(await watch(source, uuids, every_s))
        halt.set()

    async def relaying(event: asyncio.Event) -> None:
        await event.wait()
        halt.set()

    helpers = [asyncio.create_task(watching()), *([asyncio.create_task(relaying(stop))] if stop else [])]
    try:
        result = await run(halt)
    finally:
        for task in helpers:
            task.cancel()
    if lost:
        raise lost[0]
    return result


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)  # old pynvml returned bytes


def _quietly(fn: Any) -> None:
    try:
        fn()
    except Exception:  # a shutdown that fails changes nothing for us
        pass


def main(argv: Sequence[str] = ()) -> int:
    found = discover()
    if "--json" in argv:
        print(json.dumps(dataclasses.asdict(found)))
        return 0
    if not found.gpus:
        print("no NVIDIA GPU found" + "".join(f"\n  {note}" for note in found.notes))
        return 1
    print(f"{len(found.gpus)} GPU(s), through {found.source}:")
    for gpu in found.gpus:
        print(f"  {gpu}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
