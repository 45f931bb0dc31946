"""A real local grid: facilitator, validator and miner processes on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from grid.local import LocalGrid, free_port

RUNNING: list[LocalGrid] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A failing test shows the end of every running grid's logs: the processes' side of the story."""
    report = yield
    if report.failed:
        for grid in [running for running in RUNNING if running.processes]:
            for role in grid.roles:
                path = grid.home / "logs" / f"{role}.log"
                if path.exists():
                    tail = path.read_text(errors="replace").splitlines()[-40:]
                    report.sections.append((f"{role} log ({grid.home})", "\n".join(tail)))
    return report


def start_grid(home: Path, executor_classes: str = "cpu.small:4:2", **env: str) -> LocalGrid:
    """A local grid of real processes on free loopback ports; ``env``: settings of its own."""
    grid = LocalGrid(
        home,
        facilitator_port=free_port(),
        miner_port=free_port(),
        executor_classes=executor_classes,
        extra_env={"GRID_REDELIVER_S": "0.5", **env},
    )
    grid.start(timeout=60)
    RUNNING.append(grid)
    return grid


@contextlib.contextmanager
def running_grid(home: Path, executor_classes: str = "cpu.small:4:2", **env: str) -> Iterator[LocalGrid]:
    """:func:`start_grid`, stopped on the way out: a module's own grid is ``with running_grid(...)``."""
    grid = start_grid(home, executor_classes, **env)
    try:
        yield grid
    finally:
        grid.stop()


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    with running_grid(tmp_path_factory.mktemp("grid")) as grid:
        yield grid


@pytest.fixture
def client_key(tmp_path: Path) -> Path:
    return tmp_path / "client.key"


def process_children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            children.append(int(entry.name))
    return children


def find_process(argv_fragment: str) -> int | None:
    """The pid of a process whose command line contains ``argv_fragment``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if argv_fragment in cmdline:
            return int(entry.name)
    return None


def holds_a_file(root: Path) -> bool:
    """Whether anything but directories lies under ``root`` (gone meanwhile: no)."""
    try:
        return any(not path.is_dir() for path in root.rglob("*"))
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
