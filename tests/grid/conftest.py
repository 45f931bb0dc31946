"""One real local grid for the ``grid job …`` tests (tests/integration/conftest.py's ``start_grid``).

Each test gets a ``GRID_HOME`` of its own, hence a client key of its own (``job list`` sees only
its jobs), and finds the grid through ``GRID_FACILITATOR``. :func:`running_monitor` starts ``grid
monitor`` (tests/grid/test_monitor.py, tests/browser/test_monitor.py).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from grid.local import LocalGrid
from tests.integration.conftest import running_grid


@pytest.fixture(scope="session")
def job_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    with running_grid(tmp_path_factory.mktemp("job-grid")) as grid:
        yield grid


@pytest.fixture
def client_home(job_grid: LocalGrid, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("GRID_HOME", str(home))
    monkeypatch.setenv("GRID_FACILITATOR", job_grid.facilitator_url)
    monkeypatch.delenv("GRID_DEBUG", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


MONITOR_LINE = re.compile(r"^monitor: (http://127\.0\.0\.1:\d+)/ ")


@dataclass
class RunningMonitor:
    url: str
    home: Path  # its GRID_HOME: the client key it signs with
    facilitator_url: str
    process: subprocess.Popen
    lines: list[str]  # what it printed (stdout and stderr), read by a thread


@contextlib.contextmanager
def running_monitor(home: Path, facilitator_url: str, *extra: str) -> Iterator[RunningMonitor]:
    """``grid monitor`` as a user starts it (a process, ``--port 0``), stopped by SIGTERM on the way out."""
    command = [sys.executable, "-m", "grid.cli", "monitor", "--port", "0", "--poll", "0.5", *extra]
    env = {**os.environ, "GRID_HOME": str(home), "GRID_FACILITATOR": facilitator_url, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    found: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if match := MONITOR_LINE.match(line):
                found.put(match[1])
        found.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        try:
            url = found.get(timeout=30)
        except queue.Empty:
            url = None
        if url is None:
            raise AssertionError("`grid monitor` printed no address; it printed:\n" + "\n".join(lines))
        yield RunningMonitor(url, home, facilitator_url, process, lines)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
