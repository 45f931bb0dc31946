"""GPU executors (docs/gpu.md): the job gets its GPUs, a device that does not answer is the grid's fault.

No GPU here: NVML is ``FakeNvml`` (put where ``import pynvml`` finds it), the runtimes really run
the jobs, and the docker tests use the real engine, which has no NVIDIA runtime.
"""

from __future__ import annotations

import asyncio
import resource
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import docker
import pytest

from executor.driver import ExecutorConfig
from executor.errors import GpuUnavailable
from executor.runtimes.base import JobDirs
from executor.runtimes.docker import DockerRuntime
from executor.runtimes.process import ProcessRuntime
from protocol.messages import ExecutorReady, JobFinished, JobInfraFailed
from protocol.status import InfraFailureReason, Stage
from tests.executor.test_driver import Executor, job, types
from tests.executor.test_runtime_process import MAX_OUTPUT, spec
from tests.fake_nvml import FakeNvml

PY = sys.executable
GPUS = ("GPU-fake-0000", "GPU-fake-0001")
NAMES = "('GRID_GPUS', 'CUDA_VISIBLE_DEVICES', 'NVIDIA_VISIBLE_DEVICES')"
SHOW_ENV = f"import os; print([os.environ.get(k) for k in {NAMES}])"


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNvml]:
    """A machine with three fake GPUs, reached through ``import pynvml`` as nvidia-ml-py would be."""
    fake = FakeNvml.with_gpus(3)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    yield fake


def contract(dirs: JobDirs, **extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "GRID_JOB_ID": "j", "GRID_INPUT_DIR": str(dirs.volume), **extra}


# -- the process runtime ---------------------------------------------------------------------------


async def test_the_process_runtime_shows_cuda_the_jobs_gpus_alone(tmp_path: Path) -> None:
    dirs = JobDirs.create(tmp_path / "job")
    env = contract(dirs, GRID_GPUS=",".join(GPUS))
    outcome = await ProcessRuntime().run(spec([PY, "-c", SHOW_ENV]), dirs, env, max_output=MAX_OUTPUT)
    assert outcome.stdout.text().strip() == str([",".join(GPUS)] * 3)


async def test_a_cpu_job_gets_no_gpu_variables(tmp_path: Path) -> None:
    dirs = JobDirs.create(tmp_path / "job")
    outcome = await ProcessRuntime().run(spec([PY, "-c", SHOW_ENV]), dirs, contract(dirs), max_output=MAX_OUTPUT)
    assert outcome.stdout.text().strip() == str([None] * 3)


async def test_a_gpu_job_has_no_address_space_limit_which_cuda_cannot_start_under(tmp_path: Path) -> None:
    show = "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])"
    gpu_dirs, cpu_dirs = JobDirs.create(tmp_path / "gpu"), JobDirs.create(tmp_path / "cpu")
    job_spec = spec([PY, "-c", show], limits={"memory_mb": 512})
    gpu = await ProcessRuntime().run(job_spec, gpu_dirs, contract(gpu_dirs, GRID_GPUS=GPUS[0]), max_output=MAX_OUTPUT)
    cpu = await ProcessRuntime().run(job_spec, cpu_dirs, contract(cpu_dirs), max_output=MAX_OUTPUT)
    assert int(gpu.stdout.text()) == resource.RLIM_INFINITY
    assert int(cpu.stdout.text()) == 512 * 1024 * 1024


# -- the driver ------------------------------------------------------------------------------------


async def test_a_gpu_executor_checks_its_gpus_and_the_job_sees_grid_gpus(tmp_path: Path, nvml: FakeNvml) -> None:
    executor = Executor(tmp_path, gpus=GPUS)
    messages = await executor.run(job(PY, "-c", SHOW_ENV))
    assert ExecutorReady in types(messages)
    finished = messages[-1]
    assert isinstance(finished, JobFinished)
    assert finished.result.stdout.strip() == str([",".join(GPUS)] * 3)
    assert "init" in nvml.calls and nvml.initialised == 0


async def test_a_gpu_that_does_not_answer_fails_the_start_as_the_grids_fault(tmp_path: Path, nvml: FakeNvml) -> None:
    nvml.lose(1)
    messages = await Executor(tmp_path, gpus=GPUS).run(job(PY, "-c", "print('never')"))
    assert types(messages) == [JobInfraFailed]
    failure = messages[0].failure  # type: ignore[attr-defined]
    assert failure.reason == InfraFailureReason.EXECUTOR_START_FAILED and failure.stage is Stage.EXECUTOR_START
    assert "GPU-fake-0001 does not answer" in failure.message


async def test_no_nvml_and_no_nvidia_smi_fails_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    messages = await Executor(tmp_path / "work", gpus=GPUS[:1]).run(job(PY, "-c", "print('never')"))
    assert types(messages) == [JobInfraFailed]
    assert "neither NVML nor nvidia-smi" in messages[0].failure.message  # type: ignore[attr-defined]


async def test_a_gpu_lost_mid_job_ends_it_infra_failed_gpu_lost(tmp_path: Path, nvml: FakeNvml) -> None:
    executor = Executor(tmp_path, gpus=GPUS, gpu_check_s=0.05)
    spec = job(PY, "-c", "import time; time.sleep(30)", execution=60)
    executor.start(executor.initial(spec), executor.full(spec))
    while not isinstance(await executor.connection.next_sent(), ExecutorReady):
        pass
    await asyncio.sleep(0.3)  # the job runs, its GPUs answer
    nvml.lose(0)
    assert executor.task is not None
    await asyncio.wait_for(executor.task, 5)  # the job was stopped, not left to its 60 s
    sent = executor.connection.all_sent()
    assert isinstance(sent[-1], JobInfraFailed)
    failure = sent[-1].failure
    assert failure.reason == InfraFailureReason.GPU_LOST and failure.stage is Stage.EXECUTION
    assert "GPU-fake-0000" in failure.message
    assert list(tmp_path.iterdir()) == []


def test_executor_config_reads_its_gpus() -> None:
    config = ExecutorConfig.from_env({"GRID_EXECUTOR_GPUS": "GPU-a,GPU-b", "GRID_EXECUTOR_GPU_CHECK_S": "2.5"})
    assert (config.gpus, config.gpu_check_s) == (("GPU-a", "GPU-b"), 2.5)
    assert ExecutorConfig.from_env({}).gpus == ()


# -- the docker runtime ----------------------------------------------------------------------------


def test_the_container_gets_a_device_request_for_the_jobs_gpus_alone(tmp_path: Path) -> None:
    dirs = JobDirs.create(tmp_path / "job")
    runtime = DockerRuntime(client=SimpleNamespace(), gpus=GPUS)  # type: ignore[arg-type]
    options = runtime._container_options(spec(["true"], image="x"), dirs, contract(dirs, GRID_GPUS=",".join(GPUS)))
    [request] = options["device_requests"]
    assert request == docker.types.DeviceRequest(
        driver="nvidia", device_ids=list(GPUS), capabilities=[["gpu", "compute", "utility"]]
    )
    assert options["network_mode"] == "none" and options["cap_drop"] == ["ALL"] and options["read_only"]
    cpu = runtime._container_options(spec(["true"], image="x"), dirs, contract(dirs))
    assert "device_requests" not in cpu


class Engine:
    """An engine's answers to ``info()`` and ``images.get``: what prepare() asks."""

    def __init__(self, runtimes: dict[str, object]) -> None:
        self.runtimes = runtimes
        self.images = SimpleNamespace(get=lambda image: image)

    def info(self) -> dict[str, object]:
        return {"Runtimes": self.runtimes}


async def test_prepare_needs_the_nvidia_runtime_only_for_a_gpu_executor() -> None:
    plain = Engine({"runc": {"path": "runc"}})
    await DockerRuntime(client=plain, gpus=()).prepare("img")  # type: ignore[arg-type]
    with pytest.raises(GpuUnavailable, match=r"no NVIDIA container runtime.*NVIDIA Container Toolkit"):
        await DockerRuntime(client=plain, gpus=GPUS).prepare("img")  # type: ignore[arg-type]
    toolkit = Engine({"nvidia": {"path": "nvidia-container-runtime"}})
    await DockerRuntime(client=toolkit, gpus=GPUS).prepare("img")  # type: ignore[arg-type]


def test_the_runtime_takes_its_gpus_from_the_executors_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRID_EXECUTOR_GPUS", "GPU-env")
    assert DockerRuntime().gpus == ("GPU-env",)


# -- against the real engine (no NVIDIA runtime on it) ---------------------------------------------


@pytest.mark.docker
async def test_a_gpu_executor_on_an_engine_without_the_nvidia_runtime_is_refused_before_ready(
    tmp_path: Path, docker_engine: str, nvml: FakeNvml
) -> None:
    executor = Executor(tmp_path, gpus=GPUS[:1])
    executor.driver.runtime = DockerRuntime(gpus=GPUS[:1])
    spec = job("true", image="gridtest/busybox:latest")
    executor.start(executor.initial(spec), executor.full(spec))
    messages = await executor.finish()
    executor.driver.runtime.close()  # type: ignore[attr-defined]
    assert types(messages) == [JobInfraFailed]
    failure = messages[0].failure  # type: ignore[attr-defined]
    assert failure.stage is Stage.EXECUTOR_START and failure.reason == InfraFailureReason.EXECUTOR_START_FAILED
    assert "no NVIDIA container runtime" in failure.message


@pytest.mark.docker
async def test_a_device_request_the_engine_cannot_serve_is_gpu_unavailable_and_leaves_no_container(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    runtime = DockerRuntime(gpus=GPUS[:1])
    runtime._gpu_runtime_checked = True  # as if the engine had claimed an NVIDIA runtime
    dirs = JobDirs.create(tmp_path / "job")
    env = contract(dirs, GRID_GPUS=GPUS[0], GRID_JOB_ID="gpu-job-under-test")
    try:
        with pytest.raises(GpuUnavailable, match="could not select device driver"):
            await runtime.run(spec(["true"], image="gridtest/busybox:latest"), dirs, env, max_output=MAX_OUTPUT)
    finally:
        runtime.close()
    left = docker_client.containers.list(all=True, filters={"label": "gridmarket.job=gpu-job-under-test"})
    assert left == []
