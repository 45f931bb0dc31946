"""GPU discovery and device checks (executor/gpus.py), against FakeNvml and a fake nvidia-smi."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from executor.errors import GpuUnavailable
from executor.gpus import Gpu, NvidiaSmi, Nvml, assigned, discover, watch
from protocol.status import InfraFailureReason
from tests.fake_nvml import FakeGpu, FakeNvml, write_fake_smi


def test_nvml_discovery_reads_model_memory_and_uuid() -> None:
    nvml = FakeNvml([FakeGpu("GPU-a"), FakeGpu("GPU-b", name="NVIDIA H100 80GB HBM3", memory_mb=81559)])
    found = discover(nvml=nvml)
    assert found.source == "nvml"
    assert found.gpus == [
        Gpu(0, "GPU-a", "NVIDIA GeForce RTX 4090", 24564),
        Gpu(1, "GPU-b", "NVIDIA H100 80GB HBM3", 81559),
    ]
    assert nvml.initialised == 0  # every init has its shutdown


def test_a_driver_not_loaded_falls_back_to_nvidia_smi(tmp_path: Path) -> None:
    smi = write_fake_smi(tmp_path, [FakeGpu("GPU-smi", name="NVIDIA A100-SXM4-40GB", memory_mb=40960)])
    found = discover(nvml=FakeNvml(driver_loaded=False), smi=str(smi))
    assert found.source == "nvidia-smi"
    assert found.gpus == [Gpu(0, "GPU-smi", "NVIDIA A100-SXM4-40GB", 40960)]
    assert found.notes and "nvml" in found.notes[0]


def test_no_source_at_all_is_no_gpu_with_the_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi; pynvml is not installed in CI
    monkeypatch.setitem(sys.modules, "pynvml", None)
    found = discover()
    assert found.gpus == [] and found.source is None
    assert "nvidia-ml-py" in found.notes[0]


def test_nvml_check_names_the_lost_device() -> None:
    nvml = FakeNvml.with_gpus(2)
    source = Nvml(nvml)
    source.check(["GPU-fake-0001"])
    nvml.lose(1)
    source.check(["GPU-fake-0000"])
    with pytest.raises(GpuUnavailable, match="GPU-fake-0001 does not answer"):
        source.check(["GPU-fake-0000", "GPU-fake-0001"])
    with pytest.raises(GpuUnavailable, match="GPU-nope"):
        source.check(["GPU-nope"])
    assert nvml.initialised == 0


def test_nvidia_smi_check_and_a_lost_gpu(tmp_path: Path) -> None:
    flag = tmp_path / "lost"
    source = NvidiaSmi(str(write_fake_smi(tmp_path, [FakeGpu("GPU-x"), FakeGpu("GPU-y")], lost_flag=flag)))
    source.check(["GPU-y"])
    with pytest.raises(GpuUnavailable, match="GPU-z"):
        source.check(["GPU-z"])
    flag.touch()
    with pytest.raises(GpuUnavailable, match="GPU is lost"):
        source.check(["GPU-x"])


def test_a_model_name_with_a_comma_is_kept_whole(tmp_path: Path) -> None:
    smi = write_fake_smi(tmp_path, [FakeGpu("GPU-c", name="Tesla V100, PCIe", memory_mb=16384)])
    assert NvidiaSmi(str(smi)).gpus()[0].name == "Tesla V100, PCIe"


def test_the_executor_reads_its_gpus_from_its_environment() -> None:
    assert assigned({}) == ()
    assert assigned({"GRID_EXECUTOR_GPUS": "GPU-a, GPU-b,"}) == ("GPU-a", "GPU-b")


async def test_watch_returns_gpu_lost_once_a_device_stops_answering() -> None:
    nvml = FakeNvml.with_gpus(1)
    watching = asyncio.create_task(watch(Nvml(nvml), ["GPU-fake-0000"], every_s=0.01))
    await asyncio.sleep(0.05)
    assert not watching.done()
    nvml.lose(0)
    lost = await asyncio.wait_for(watching, 2)
    assert lost.reason is InfraFailureReason.GPU_LOST and "GPU-fake-0000" in str(lost)


def test_the_command_prints_what_it_found(tmp_path: Path) -> None:
    write_fake_smi(tmp_path, [FakeGpu("GPU-cli", name="NVIDIA L4", memory_mb=23034)])
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "executor.gpus"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "1 GPU(s), through nvidia-smi" in done.stdout
    assert "GPU 0: NVIDIA L4, 23034 MB (GPU-cli)" in done.stdout
    empty = subprocess.run(
        [sys.executable, "-m", "executor.gpus"],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert empty.returncode == 1 and "no NVIDIA GPU found" in empty.stdout
