"""A GPU class on a real local grid, on a machine without a GPU (docs/gpu.md).

The GPUs are a fake ``nvidia-smi`` (tests/fake_nvml.py) on the grid's ``PATH``: the miner
discovers two "RTX 4090"s through it at start and binds its ``gpu.24gb`` executors to them, each
executor checks its device with it before reporting ready, and the job runs it as a job on a
real GPU would run the real one. scripts/gpu_check.sh does the same with a real GPU.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facilitator_sdk import Client, JobError, JobSpec
from grid.local import LocalGrid, free_port
from tests.fake_nvml import FakeGpu, write_fake_smi
from tests.integration.conftest import running_grid

GPUS = [FakeGpu("GPU-11111111-2222-3333-4444-000000000000"), FakeGpu("GPU-11111111-2222-3333-4444-000000000001")]
SHOW = 'echo "gpus=$GRID_GPUS cuda=$CUDA_VISIBLE_DEVICES nvidia=$NVIDIA_VISIBLE_DEVICES"; nvidia-smi -L'


@pytest.fixture(scope="module")
def fake_gpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bin_dir = tmp_path_factory.mktemp("fake-gpu-bin")
    write_fake_smi(bin_dir, GPUS, lost_flag=bin_dir / "lost")
    return bin_dir


@pytest.fixture(scope="module")
def gpu_grid(tmp_path_factory: pytest.TempPathFactory, fake_gpus: Path) -> Iterator[LocalGrid]:
    with running_grid(
        tmp_path_factory.mktemp("gpu-grid"),
        "cpu.small:1:1,gpu.24gb:2:1",
        **{"PATH": f"{fake_gpus}:{os.environ['PATH']}", "GRID_EXECUTOR_GPU_CHECK_S": "0.2"},
    ) as grid:
        yield grid


def receipts_of(grid: LocalGrid, job_id: str, timeout: float = 15.0) -> list[dict]:
    """The receipts the miner kept for ``job_id`` once all three are countersigned."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(grid.home / "miner.sqlite3") as db:
            rows = db.execute("SELECT receipt FROM miner_minerreceipt WHERE job_id = ?", (job_id,)).fetchall()
        if len(rows) == 3 or time.monotonic() > deadline:
            return [json.loads(receipt) for (receipt,) in rows]
        time.sleep(0.2)


def test_a_gpu_job_sees_its_gpu_and_its_receipts_name_it(gpu_grid: LocalGrid, tmp_path: Path) -> None:
    with Client(gpu_grid.facilitator_url, tmp_path / "client.key") as client:
        job = client.run(JobSpec(command=["sh", "-c", SHOW], executor_class="gpu.24gb"), timeout=60)
        cpu = client.run(JobSpec(command=["sh", "-c", 'echo "gpus=$GRID_GPUS cuda=$CUDA_VISIBLE_DEVICES"']), timeout=60)
    assert job.result is not None
    first_line, *listing = job.result.stdout.splitlines()
    uuid = first_line.split()[0].removeprefix("gpus=")
    assert uuid in {gpu.uuid for gpu in GPUS}
    assert first_line == f"gpus={uuid} cuda={uuid} nvidia={uuid}"
    assert any(uuid in line for line in listing), job.result.stdout
    assert cpu.result is not None and cpu.result.stdout == "gpus= cuda=\n"

    receipts = receipts_of(gpu_grid, job.job_id)
    assert sorted(r["payload"]["kind"] for r in receipts) == ["accepted", "finished", "started"]
    assert all(r["payload"]["gpus"] == [uuid] for r in receipts)
    assert all("gpus" not in r["payload"] for r in receipts_of(gpu_grid, cpu.job_id))


def test_a_gpu_lost_during_the_job_ends_it_infra_failed(gpu_grid: LocalGrid, fake_gpus: Path, tmp_path: Path) -> None:
    lost = fake_gpus / "lost"  # once it exists, the fake nvidia-smi fails as with a GPU off the bus
    spec = JobSpec(
        command=["sh", "-c", f"touch {lost}; sleep 30"],
        executor_class="gpu.24gb",
        timing={"execution": 40},
        max_attempts=1,
    )
    started = time.monotonic()
    with Client(gpu_grid.facilitator_url, tmp_path / "client.key") as client:
        try:
            with pytest.raises(JobError) as ended:
                client.run(spec, timeout=60)
        finally:
            lost.unlink(missing_ok=True)
    assert (ended.value.status, ended.value.reason, ended.value.stage) == ("infra_failed", "gpu_lost", "execution")
    assert time.monotonic() - started < 20, "the job was stopped, not left to sleep out its time"


def test_a_miner_with_fewer_gpus_than_its_classes_need_refuses_to_start(fake_gpus: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{fake_gpus}:{os.environ['PATH']}",
        "GRID_HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "grid.settings.miner",
        "GRID_EXECUTOR_CLASSES": "gpu.24gb:3",
    }
    argv = [sys.executable, "-m", "grid.serve", "-b", "127.0.0.1", "-p", str(free_port())]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "needs 3 GPU(s) with ≥ 24576 MB (3 executor(s) × 1 GPU(s)), but only 2 of this machine's 2" in done.stderr
