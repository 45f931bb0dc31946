"""The process runtime: the job runs as a local subprocess (DESIGN.md §5). The embedded default.

Features: its own session (the whole process group is killed on timeout or cancel), its own
directory tree (``HOME`` and ``TMPDIR`` inside it), an environment holding only the job contract
and the spec's variables, and rlimits: address space from ``limits.memory_mb``, CPU seconds as a
backstop behind the wall-clock limit, no core dumps, a cap on file size.

Not isolated like the docker runtime: no network namespace and no pids limit (RLIMIT_NPROC
counts every process of the user, not the job's). Use it on machines without a Docker engine.
The job gets SIGKILL when the executor dies (``PR_SET_PDEATHSIG``); processes it forks and
detaches from its session are not tracked.

The limits and the death signal are set between fork and the job's exec by a launcher, so the
job is started with vfork rather than by forking the whole executor to run a Python
``preexec_fn`` (which also costs the child page faults on the executor's heap). The launcher is
``grid-launch`` beside the executor's Python (executor/runtimes/launch.c, one small static exec;
scripts/build_launcher.sh builds it where a C compiler is), else util-linux's ``setpriv`` and
``prlimit`` (always there on Debian, but two dynamically linked execs: about three times the CPU),
else (another system) the ``preexec_fn``.

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
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from executor.runtimes.base import OUTPUT_DRAIN_S, JobDirs, Runtime, RuntimeFailure
from protocol.spec import JobSpec
from protocol.status import FailureReason

__all__ = ["ProcessRuntime"]

MAX_FILE_BYTES = 1024**3
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


SETPRIV, PRLIMIT = shutil.which("setpriv"), shutil.which("prlimit")


def _grid_launch() -> str | None:
    beside = Path(sys.executable).with_name("grid-launch")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("grid-launch")


GRID_LAUNCH = _grid_launch()


def _rlimits(spec: JobSpec) -> tuple[int, int]:
    """The job's address space (bytes) and CPU seconds (a backstop behind the wall-clock limit)."""
    return spec.limits.memory_mb * 1024 * 1024, math.ceil(spec.timing.execution * spec.limits.cpu) + 1


def _launcher(spec: JobSpec, gpu: bool = False) -> list[str] | None:
    """The command line prefix that sets the job's death signal and rlimits, then execs it;
    ``None`` where neither launcher is there (the ``preexec_fn`` then does it)."""
    memory, cpu_seconds = _rlimits(spec)
    if GRID_LAUNCH is not None:
        # Its parent is this process (vfork from here): it checks so, after asking for the signal.
        limits = [str(0 if gpu else memory), str(cpu_seconds), str(cpu_seconds + 1), str(MAX_FILE_BYTES)]
        return [GRID_LAUNCH, str(os.getpid()), *limits, "--"]
    if SETPRIV is None or PRLIMIT is None:
        return None
    return [
        *(SETPRIV, "--pdeathsig", "KILL", "--"),
        *(PRLIMIT, *([] if gpu else [f"--as={memory}"]), f"--cpu={cpu_seconds}:{cpu_seconds + 1}", "--core=0"),
        *(f"--fsize={MAX_FILE_BYTES}", "--"),
    ]


def _check_command(command: str, env: dict[str, str], cwd: os.PathLike[str] | str) -> None:
    """Refuse, as ``exec`` would, a command that is not there or cannot run.

    With a launcher in front, ``exec`` of the job happens in the launcher, whose failure would
    only be an exit status: look the command up first, the way subprocess does (a path with a
    slash from the job's directory, a name along the job's ``PATH``).

    Raises:
        FileNotFoundError: nothing by that name.
        PermissionError: something there, but no executable file.
    """
    if "/" in command:
        candidates = [os.path.join(cwd, command)]
    else:
        candidates = [os.path.join(directory, command) for directory in os.get_exec_path(env)]
    found = [path for path in candidates if os.path.exists(path)]
    if not found:
        raise FileNotFoundError(command)
    if not any(os.path.isfile(path) and os.access(path, os.X_OK) for path in found):
        raise PermissionError(command)


def _limits(spec: JobSpec, gpu: bool = False) -> Any:
    memory, cpu_seconds = _rlimits(spec)

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
        job_env = {**env, **_gpu_env(env), "HOME": str(dirs.root), "TMPDIR": str(dirs.tmp)}
        gpu = bool(env.get("GRID_GPUS"))
        launcher = _launcher(spec, gpu)
        launched = launcher is not None
        if launcher is not None:
            command, options = [*launcher, *spec.command], {}
        else:
            command, options = list(spec.command), {"preexec_fn": _limits(spec, gpu)}
        try:
            if launched:
                _check_command(spec.command[0], job_env, dirs.root)
            return await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=dirs.root,
                env=job_env,
                start_new_session=True,
                **options,
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
