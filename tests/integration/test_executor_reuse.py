"""Executors serve job after job (executor/__main__.py, miner/executors/pool.py), with real processes.

One executor (``cpu.small:1:1``) that serves at most 2 jobs: the first two jobs run under the
same executor process, each in a fresh job process and directory; the third gets a new executor.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from facilitator_sdk import Client, JobError, JobSpec
from grid.local import LocalGrid
from tests.integration.conftest import running_grid

REPORT = (
    "import json, os; out = os.environ['GRID_OUTPUT_DIR']; "
    "print(json.dumps({'executor': os.getppid(), 'job': os.getpid(), 'dir': out,"
    " 'seen': os.listdir(os.path.dirname(os.path.dirname(out)))}))"
)


@pytest.fixture(scope="module")
def one_executor_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    with running_grid(tmp_path_factory.mktemp("grid"), "cpu.small:1:1", GRID_EXECUTOR_MAX_JOBS="2") as grid:
        yield grid


def test_an_executor_serves_max_jobs_then_a_fresh_one_takes_over(one_executor_grid: LocalGrid, tmp_path: Path) -> None:
    with Client(one_executor_grid.facilitator_url, tmp_path / "client.key") as client:
        first = json.loads(client.run(JobSpec(command=[sys.executable, "-c", REPORT]), timeout=60).result.stdout)
        with pytest.raises(JobError) as failed:  # a job's own failure does not cost its executor
            client.run(JobSpec(command=[sys.executable, "-c", REPORT + "; raise SystemExit(3)"]), timeout=60)
        assert failed.value.reason == "nonzero_exit"
        second = json.loads(failed.value.job.failure["stdout_tail"])
        third = json.loads(client.run(JobSpec(command=[sys.executable, "-c", REPORT]), timeout=60).result.stdout)

    assert first["executor"] == second["executor"] != third["executor"]
    assert len({first["job"], second["job"], third["job"]}) == 3
    # One executor keeps its job directories, emptied, from job to job; a fresh one makes its own.
    assert first["dir"] == second["dir"] != third["dir"]
    # Each job found only its own directory: the last executor's was removed when it ended.
    assert [len(report["seen"]) for report in (first, second, third)] == [1, 1, 1]
