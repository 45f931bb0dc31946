"""Starts executor processes on this machine.

Each executor gets a fresh one-time ed25519 key: the seed goes over a pipe (never into an
environment a job could read), the miner keeps the public half and accepts exactly one
connection with it.

:class:`ForkServerSpawner` (the default) forks executors from ``python -m executor.forkserver``,
which has imported the executor once: a few ms per executor instead of ~200 ms of CPU for a
fresh interpreter, which on a small machine would compete with the jobs themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from dataclasses import dataclass, field

from protocol.keys import Keypair

__all__ = ["ExecutorProcess", "ForkServerSpawner", "SpawnConfig"]

log = logging.getLogger("grid.miner.spawner")


@dataclass
class SpawnConfig:
    miner_url: str
    miner_hotkey: str
    python: str = sys.executable
    runtime: str = "process"
    max_output: int = 1024 * 1024
    work_root: str | None = None
    max_jobs: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **self.extra_env,
            "GRID_MINER_URL": self.miner_url,
            "GRID_MINER_HOTKEY": self.miner_hotkey,
            "GRID_EXECUTOR_RUNTIME": self.runtime,
            "GRID_EXECUTOR_MAX_OUTPUT": str(self.max_output),
            "GRID_EXECUTOR_MAX_JOBS": str(self.max_jobs),  # the pool counts the same (ExecutorPool.recycle)
            "GRID_EXECUTOR_WORK_ROOT": self.work_root or os.path.join(tempfile.gettempdir(), "gridmarket-jobs"),
        }
        # Nothing of the miner's own configuration or secrets goes to executors; nor GPUs: the
        # fork server gives each executor its own (GRID_EXECUTOR_GPUS).
        for name in (
            "DJANGO_SETTINGS_MODULE",
            "GRID_SECRET_KEY",
            "GRID_KEY_FILE",
            "GRID_DATABASE_URL",
            "GRID_EXECUTOR_GPUS",
        ):
            env.pop(name, None)
        return env


class ExecutorProcess:
    """An executor started by the fork server: its pid, and its exit status once it ends."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exited = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        return f"<ExecutorProcess {self.pid} returncode={self.returncode}>"

    def _set_exit(self, status: int) -> None:
        self.returncode = status
        if not self._exited.done():
            self._exited.set_result(status)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class ForkServerSpawner:
    def __init__(self, config: SpawnConfig) -> None:
        self.config = config
        self._server: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting: dict[str, asyncio.Future[int]] = {}
        self._running: dict[int, ExecutorProcess] = {}
        self._lock = asyncio.Lock()

    async def _ensure_server(self) -> asyncio.subprocess.Process:
        async with self._lock:
            if self._server is None or self._server.returncode is not None:
                self._server = await asyncio.create_subprocess_exec(
                    self.config.python,
                    "-m",
                    "executor.forkserver",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=self.config.env(),
                )
                self._reader = asyncio.create_task(self._read(self._server))
            return self._server

    async def _read(self, server: asyncio.subprocess.Process) -> None:
        assert server.stdout is not None
        while line := await server.stdout.readline():
            parts = line.decode().split()
            if len(parts) == 3 and parts[0] == "started":
                future = self._starting.pop(parts[1], None)
                if future is not None and not future.done():
                    future.set_result(int(parts[2]))
            elif len(parts) == 3 and parts[0] == "exited":
                process = self._running.pop(int(parts[1]), None)
                if process is not None:
                    process._set_exit(int(parts[2]))
        log.error("the executor fork server exited (%s)", await server.wait())
        # Its executors can no longer be tracked; treat them as gone.
        for process in self._running.values():
            process._set_exit(-1)
        self._running.clear()
        for future in self._starting.values():
            if not future.done():
                future.set_exception(OSError("the executor fork server exited"))
        self._starting.clear()

    async def spawn(self, keypair: Keypair, gpus: tuple[str, ...] = ()) -> ExecutorProcess:
        """Start an executor with this one-time key, bound to the GPUs ``gpus`` (UUIDs; none: no GPU)."""
        server = await self._ensure_server()
        assert server.stdin is not None
        token = keypair.hotkey[:16]
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._starting[token] = started
        devices = f" {','.join(gpus)}" if gpus else ""
        server.stdin.write(f"spawn {token} {keypair.seed_hex}{devices}\n".encode())
        await server.stdin.drain()
        pid = await asyncio.wait_for(started, 10)
        process = ExecutorProcess(pid)
        self._running[pid] = process
        return process

    async def close(self) -> None:
        for process in list(self._running.values()):
            process.kill()
        if self._server is not None and self._server.returncode is None:
            self._server.kill()
            await self._server.wait()
