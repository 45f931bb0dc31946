"""Promise 1 on the production channel layer: Redis dies under running jobs and comes back.

The grid's roles share one ``redis-server`` of the test's own (so it can be killed) as their
channel layer. Whatever was relayed through it while it was down is lost; the jobs must still
end, each with a reason, and the grid must run jobs again once Redis is back.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from grid.local import free_port
from tests.executor.httpserver import serve
from tests.reliability.faults import STAGES, FaultGrid

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (scripts/system_deps.sh)"),
]


class RedisServer:
    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.home,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[FaultGrid]:
    with serve() as web:
        grid = FaultGrid(
            tmp_path_factory.mktemp("redis-faults"),
            web,
            GRID_CHANNEL_LAYER="redis",
            GRID_REDIS_URL=redis_server.url,
        ).start()
        try:
            yield grid
        finally:
            grid.stop()


@pytest.mark.parametrize("stage", STAGES)
def test_redis_dying_under_a_job_still_ends_it_with_a_reason(
    grid: FaultGrid, redis_server: RedisServer, stage: str
) -> None:
    probe = grid.hold(stage, timing={"execution": 20, "download": 20, "upload": 20})
    redis_server.kill()
    time.sleep(1.0)
    redis_server.start()
    record = grid.settle(probe, timeout=120)
    assert record["status"] in {"completed", "infra_failed"}, record
    assert grid.runs(probe) <= record["attempt"]


def test_jobs_run_again_once_redis_is_back(grid: FaultGrid) -> None:
    probe = grid.hold("execution")
    record = grid.settle(probe)
    assert (record["status"], grid.runs(probe)) == ("completed", 1)
    # Pushed to the client again: its event stream crosses the facilitator's channel layer.
    with grid.client() as client:
        job = client.run(grid.spec("probe-pushed", "none"), timeout=60)
    assert job.status == "completed"
    # … and no connection was dropped for it: consumers waited for Redis instead of crashing.
    for role in ("facilitator", "miner", "miner-1"):
        log = (grid.grid.home / "logs" / f"{role}.log").read_text(errors="replace")
        assert "Exception in ASGI application" not in log, f"{role}: a consumer crashed"
