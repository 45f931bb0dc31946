"""The process runtime: the job runs as a local subprocess (DESIGN.md §5). The embedded default.

Features: its own session (the whole process group is killed on timeout or cancel), its own
directory tree (``HOME`` and ``TMPDIR`` inside it), an environment holding only the job contract
and the spec's variables, and rlimits: address space from ``limits.memory_mb``, CPU seconds as a
backstop behind the wall-clock limit, no core dumps, a cap on file size.

Not isolated like the docker runtime: no network namespace and no pids limit (RLIMIT_NPROC
counts every process of the user, not the job's). Use it on machines without a Docker engine.
The job gets SIGKILL when the executor dies (``PR_SET_PDEATHSIG``); processes it forks and
detaches from its session are not tracked.

GPUs: a GPU executor's job gets ``CUDA_VISIBLE_DEVICES`` and ``NVIDIA_VISIBLE_DEVICES`` set to its
devices (``GRID_GPUS``, UUIDs), so CUDA shows it those alone. That is a convention CUDA keeps,
not a wall: the job can still open every ``/dev/nvidia*`` the executor's user can (docs/gpu.md).
Nor does a GPU job get the address-space limit: CUDA reserves virtual address space for all of
the machine's and the GPU's memory at its start, and fails under any ``RLIMIT_AS`` near the
job's memory (the docker runtime's cgroup limit counts real memory, and applies as usual).
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import os
import resource
import signal
from typing import Any

from executor.runtimes.base import OUTPUT_DRAIN_S, JobDirs, Runtime, RuntimeFailure
from protocol.spec import JobSpec
from protocol.status import FailureReason

__all__ = ["ProcessRuntime"]

MAX_FILE_BYTES = 1024**3
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _limits(spec: JobSpec, gpu: bool = False) -> Any:
    memory = spec.limits.memory_mb * 1024 * 1024
    cpu_seconds = math.ceil(spec.timing.execution * spec.limits.cpu) + 1

    def apply() -> None:
        # If the executor dies (crash, SIGKILL), the job dies with it instead of running on unowned.
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if not gpu:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))

    return apply


def _gpu_env(env: dict[str, str]) -> dict[str, str]:
    """The variables that show CUDA (and NVIDIA's tools) the job's GPUs alone; none for a CPU job."""
    gpus = env.get("GRID_GPUS", "")
    return {"CUDA_VISIBLE_DEVICES": gpus, "NVIDIA_VISIBLE_DEVICES": gpus} if gpus else {}


class ProcessRuntime(Runtime):
    name = "process"

    async def _start(self, spec: JobSpec, dirs: JobDirs, env: dict[str, str]) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *spec.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=dirs.root,
                env={**env, **_gpu_env(env), "HOME": str(dirs.root), "TMPDIR": str(dirs.tmp)},
                start_new_session=True,
                preexec_fn=_limits(spec, gpu=bool(env.get("GRID_GPUS"))),
            )
        except FileNotFoundError:
            raise RuntimeFailure(FailureReason.COMMAND_NOT_FOUND, f"command not found: {spec.command[0]}") from None
        except PermissionError:
            raise RuntimeFailure(
                FailureReason.COMMAND_NOT_FOUND, f"command is not executable: {spec.command[0]}"
            ) from None

    def _stdout(self, handle: asyncio.subprocess.Process) -> asyncio.StreamReader | None:
        return handle.stdout

    def _stderr(self, handle: asyncio.subprocess.Process) -> asyncio.StreamReader | None:
        return handle.stderr

    async def _wait(self, handle: asyncio.subprocess.Process) -> None:
        # asyncio's Process.wait() also waits for the pipes to close, which a background child
        # holding them would delay until the time limit: watch the process itself (pidfd).
        try:
            pidfd = os.pidfd_open(handle.pid)
        except ProcessLookupError:
            return  # already exited and reaped
        loop = asyncio.get_running_loop()
        exited = loop.create_future()
        loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
        try:
            await exited
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)

    async def _exit_code(self, handle: asyncio.subprocess.Process) -> int | None:
        try:
            async with asyncio.timeout(OUTPUT_DRAIN_S):
                return await handle.wait()
        except TimeoutError:
            return handle.returncode  # something outside the job's group still holds its pipes

    async def _kill(self, handle: asyncio.subprocess.Process) -> None:
        try:
            os.killpg(handle.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def cleanup(self, handle: asyncio.subprocess.Process) -> None:
        # Children the job left behind in its session die with it.
        await self._kill(handle)
