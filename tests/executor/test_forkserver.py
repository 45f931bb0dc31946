"""The executor fork server (executor/forkserver.py), started as the miner starts it.

Real processes throughout: ``python -m executor.forkserver`` with the environment of the miner's
:class:`SpawnConfig`, spoken to over its stdin/stdout line protocol, both by hand (to send it bad
requests) and through the miner's own :class:`ForkServerSpawner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from miner.executors.spawner import ForkServerSpawner, SpawnConfig
from protocol.keys import Keypair

ROOT = Path(__file__).resolve().parents[2]
LINE_TIMEOUT_S = 10.0


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_miner() -> Iterator[str]:
    """A miner address that accepts TCP and never answers: an executor waits there (10 s open timeout)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/ws/executor/"


def dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def config(work_root: Path, miner_url: str, **env: str) -> SpawnConfig:
    return SpawnConfig(
        miner_url=miner_url,
        miner_hotkey=Keypair.generate().hotkey,
        python=sys.executable,
        work_root=str(work_root),
        extra_env={"PYTHONPATH": str(ROOT), **env},
    )


class ForkServer:
    """``python -m executor.forkserver`` spoken to by hand; its stderr goes to a file."""

    def __init__(self, process: asyncio.subprocess.Process, stderr: Path) -> None:
        self.process = process
        self.stderr_path = stderr
        self.pids: list[int] = []

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def line(self) -> list[str]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), LINE_TIMEOUT_S)
        assert raw, f"the fork server closed its stdout; stderr:\n{self.stderr[-2000:]}"
        return raw.decode().split()

    async def spawn(self, token: str, *gpus: str) -> int:
        devices = f" {','.join(gpus)}" if gpus else ""
        await self.send(f"spawn {token} {Keypair.generate().seed_hex}{devices}")
        kind, answered, pid = await self.line()
        assert (kind, answered) == ("started", token)
        self.pids.append(int(pid))
        return int(pid)

    async def exited(self) -> tuple[int, int]:
        kind, pid, status = await self.line()
        assert kind == "exited"
        return int(pid), int(status)


@contextlib.asynccontextmanager
async def fork_server(spawn_config: SpawnConfig, tmp_path: Path) -> AsyncIterator[ForkServer]:
    stderr = tmp_path / "forkserver.stderr"
    with stderr.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            spawn_config.python,
            "-m",
            "executor.forkserver",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=sink,
            env=spawn_config.env(),
            cwd=ROOT,
        )
    server = ForkServer(process, stderr)
    try:
        yield server
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for pid in server.pids:  # executors outlive a killed server; do not leave them behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def eventually(check: Callable[[], bool], timeout: float = LINE_TIMEOUT_S) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


async def test_an_executor_that_cannot_reach_its_miner_exits_2(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{closed_port()}/ws/executor/"
    async with fork_server(config(tmp_path / "jobs", url), tmp_path) as server:
        pid = await server.spawn("tok1")

        assert await server.exited() == (pid, 2)
    assert "cannot reach the miner" in server.stderr


async def test_a_killed_executor_is_reported_and_its_job_dirs_removed(tmp_path: Path, silent_miner: str) -> None:
    work_root = tmp_path / "jobs"
    work_root.mkdir()
    async with fork_server(config(work_root, silent_miner), tmp_path) as server:
        first = await server.spawn("first")
        second = await server.spawn("second")
        assert first != second
        mine = work_root / f"job-{first}-abc"
        (mine / "input").mkdir(parents=True)
        (mine / "input" / "data").write_bytes(b"x")
        other = work_root / f"job-{second}-def"
        other.mkdir()

        os.kill(first, signal.SIGKILL)

        assert await server.exited() == (first, -signal.SIGKILL)
        assert not mine.exists()
        assert other.exists()  # still alive: its directory stays
        os.kill(second, signal.SIGTERM)
        assert await server.exited() == (second, -signal.SIGTERM)
        assert not other.exists()


async def test_leftovers_of_dead_executors_are_swept_at_start(tmp_path: Path) -> None:
    work_root = tmp_path / "jobs"
    dead = work_root / f"job-{dead_pid()}-old"
    unparsable = work_root / "job-notapid-x"
    alive = work_root / f"job-{os.getpid()}-live"
    unrelated = work_root / "cache"
    for path in (dead, unparsable, alive, unrelated):
        path.mkdir(parents=True)

    url = f"ws://127.0.0.1:{closed_port()}/ws/executor/"
    async with fork_server(config(work_root, url), tmp_path) as server:
        # The sweep runs before the first request is read: a spawn answered means it is done.
        pid = await server.spawn("tok")
        await server.exited()

    assert pid > 0
    assert not dead.exists() and not unparsable.exists()
    assert alive.exists() and unrelated.exists()


async def test_leftovers_are_swept_periodically(tmp_path: Path, silent_miner: str) -> None:
    work_root = tmp_path / "jobs"
    work_root.mkdir()
    async with fork_server(config(work_root, silent_miner, GRID_EXECUTOR_SWEEP_S="0.2"), tmp_path) as server:
        running = await server.spawn("tok")
        late = work_root / f"job-{dead_pid()}-late"
        late.mkdir()
        kept = work_root / f"job-{running}-busy"
        kept.mkdir()

        await eventually(lambda: not late.exists())

        assert kept.exists()  # its executor is alive
        assert server.process.returncode is None


@pytest.mark.parametrize(
    "request_line",
    ["hello", "spawn", "spawn onlytoken", "spawn a b c d e", "start tok seed"],
)
async def test_a_malformed_request_is_ignored_and_the_server_goes_on(tmp_path: Path, request_line: str) -> None:
    url = f"ws://127.0.0.1:{closed_port()}/ws/executor/"
    async with fork_server(config(tmp_path / "jobs", url), tmp_path) as server:
        await server.send(request_line)
        # The next good request is the first one answered: nothing was forked for the bad one.
        pid = await server.spawn("good")
        assert await server.exited() == (pid, 2)
        await eventually(lambda: "ignoring malformed request" in server.stderr)


async def test_requests_split_across_writes_and_batched_in_one_are_all_served(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{closed_port()}/ws/executor/"
    async with fork_server(config(tmp_path / "jobs", url), tmp_path) as server:
        seed_a, seed_b = Keypair.generate().seed_hex, Keypair.generate().seed_hex
        assert server.process.stdin is not None
        server.process.stdin.write(f"spawn a {seed_a[:10]}".encode())
        await server.process.stdin.drain()
        await asyncio.sleep(0.1)
        server.process.stdin.write(f"{seed_a[10:]}\nspawn b {seed_b}\n".encode())
        await server.process.stdin.drain()

        answers = [await server.line() for _ in range(4)]

    started = {parts[1]: int(parts[2]) for parts in answers if parts[0] == "started"}
    exited = {int(parts[1]): int(parts[2]) for parts in answers if parts[0] == "exited"}
    assert set(started) == {"a", "b"}
    assert exited == {started["a"]: 2, started["b"]: 2}


async def test_the_server_exits_when_its_stdin_closes(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{closed_port()}/ws/executor/"
    async with fork_server(config(tmp_path / "jobs", url), tmp_path) as server:
        assert server.process.stdin is not None
        server.process.stdin.close()

        assert await asyncio.wait_for(server.process.wait(), LINE_TIMEOUT_S) == 0


async def test_the_spawner_starts_and_tracks_executors(tmp_path: Path, silent_miner: str) -> None:
    spawner = ForkServerSpawner(config(tmp_path / "jobs", silent_miner))
    try:
        process = await spawner.spawn(Keypair.generate())
        assert process.returncode is None
        os.kill(process.pid, 0)  # a real, running process

        process.kill()

        assert await asyncio.wait_for(process.wait(), LINE_TIMEOUT_S) == -signal.SIGKILL
        assert process.returncode == -signal.SIGKILL
    finally:
        await spawner.close()


async def test_the_spawner_survives_its_fork_server_dying(tmp_path: Path, silent_miner: str) -> None:
    spawner = ForkServerSpawner(config(tmp_path / "jobs", silent_miner))
    try:
        orphan = await spawner.spawn(Keypair.generate())
        first_server = spawner._server
        assert first_server is not None

        first_server.kill()

        # Its executors can no longer be tracked: they read as gone.
        assert await asyncio.wait_for(orphan.wait(), LINE_TIMEOUT_S) == -1
        # The next spawn starts a new fork server.
        process = await spawner.spawn(Keypair.generate())
        assert spawner._server is not first_server
        assert process.returncode is None
        os.kill(process.pid, 0)
    finally:
        await spawner.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan.pid, signal.SIGKILL)  # it outlived its server, as the module docstring says
