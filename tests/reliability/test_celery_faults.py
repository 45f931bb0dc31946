"""Promise 1 for the Celery worker: it dies (SIGKILL) under a running job, and nothing is lost.

The validator's periodic work (registry sync, receipts, scores, blacklist expiry) runs on Celery
here, as in compose/: beat and a worker on a Redis broker of the test's own. The worker holds no
job state, so a job under way when it dies completes on its first attempt, run once; once the
worker is back, the periodic work goes on (scores are published again).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.executor.httpserver import serve
from tests.reliability.faults import FaultGrid
from tests.reliability.test_redis_faults import RedisServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (scripts/system_deps.sh)"),
]

ROOT = Path(__file__).resolve().parents[2]


class CeleryWorker:
    """``celery -A grid.celery worker --beat`` with the validator's environment."""

    def __init__(self, grid: FaultGrid) -> None:
        self.grid = grid
        self.log_path = grid.home / "celery.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "celery", "-A", "grid.celery", "worker", "--beat", "--pool", "solo"]
        command += ["--schedule", str(self.grid.home / "beat-schedule"), "--loglevel", "INFO"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=self.grid.grid.env("validator"),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its embedded beat is a child process: killed with it
            )

    def kill(self) -> None:
        """SIGKILL the worker and its beat, as when its container dies."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def published_scores(grid: FaultGrid) -> int:
    db = sqlite3.connect(grid.home / "validator.sqlite3", timeout=5)
    try:
        return db.execute("SELECT COUNT(*) FROM validator_publishedscores").fetchone()[0]
    finally:
        db.close()


def wait_for_scores(grid: FaultGrid, worker: CeleryWorker, more_than: int) -> int:
    deadline = time.monotonic() + 60
    while (count := published_scores(grid)) <= more_than:
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        assert time.monotonic() < deadline, "no scores published:\n" + worker.log_tail()
        time.sleep(0.2)
    return count


@pytest.fixture
def grid_and_worker(tmp_path: Path) -> Iterator[tuple[FaultGrid, CeleryWorker]]:
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    try:
        with serve() as web:
            periodic = {"GRID_PERIODIC": "celery", "GRID_REDIS_URL": redis_server.url, "GRID_SCORES_EVERY_S": "1"}
            grid = FaultGrid(tmp_path / "grid", web, validator_env=periodic)
            # The validator learns its miners from the registry, which the worker syncs: up first.
            grid.grid.migrate()
            worker = CeleryWorker(grid)
            worker.start()
            try:
                grid.start()
                yield grid, worker
            finally:
                worker.kill()
                grid.stop()
    finally:
        redis_server.kill()


def test_the_celery_worker_dying_under_a_job_loses_nothing_and_its_work_resumes(
    grid_and_worker: tuple[FaultGrid, CeleryWorker],
) -> None:
    grid, worker = grid_and_worker
    before = wait_for_scores(grid, worker, 0)
    probe = grid.hold("execution")
    worker.kill()
    record = grid.settle(probe)
    assert (record["status"], record["attempt"], grid.runs(probe)) == ("completed", 1, 1)
    worker.start()
    wait_for_scores(grid, worker, published_scores(grid))
    assert published_scores(grid) > before
