"""GPU classes on the miner (miner/executors/gpus.py, the pool's binding): which executor gets which GPU."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from executor.gpus import discover as executor_discover
from miner.executors.classes import parse_classes
from miner.executors.gpus import Gpu, GpuShortfall, check_gpus, discover, plan_gpus
from miner.executors.pool import ExecutorPool
from protocol.classes import ClassSpec
from protocol.messages import ClassCapacity
from tests.fake_nvml import FakeGpu, FakeNvml, write_fake_smi

from .conftest import FakeSpawner, settle


def machine(*cards: tuple[str, int], uuids: str = "GPU-{}") -> list[Gpu]:
    """The GPUs the miner would discover: FakeNvml's devices, read through executor/gpus.py."""
    nvml = FakeNvml([FakeGpu(uuid=uuids.format(i), name=name, memory_mb=mb) for i, (name, mb) in enumerate(cards)])
    return [Gpu(**vars(gpu)) for gpu in executor_discover(nvml=nvml).gpus]


RTX = ("NVIDIA GeForce RTX 4090", 24564)
H100 = ("NVIDIA H100 80GB HBM3", 81559)


def test_each_executor_of_a_gpu_class_gets_its_own_gpu() -> None:
    plan = plan_gpus(parse_classes("cpu.small:4:2,gpu.24gb:2:1"), machine(RTX, RTX, RTX))
    assert plan.groups == {"gpu.24gb": [("GPU-0",), ("GPU-1",)]}


def test_a_class_of_bigger_gpus_takes_only_those_and_no_gpu_serves_two_classes() -> None:
    plan = plan_gpus(parse_classes("gpu.80gb:1,gpu.24gb:2"), machine(RTX, H100, RTX))
    assert plan.groups == {"gpu.80gb": [("GPU-1",)], "gpu.24gb": [("GPU-0",), ("GPU-2",)]}


def test_several_gpus_per_executor_and_a_shared_class() -> None:
    plan = plan_gpus(parse_classes("duo:2:0:cpu=4:memory_mb=4096:gpus=2"), machine(RTX, RTX, RTX, RTX))
    assert plan.groups == {"duo": [("GPU-0", "GPU-1"), ("GPU-2", "GPU-3")]}
    shared = plan_gpus(parse_classes("gpu.24gb:3:0:gpu_share=2"), machine(RTX, RTX))
    assert shared.groups == {"gpu.24gb": [("GPU-0",), ("GPU-0",), ("GPU-1",)]}


def test_more_executors_than_gpus_is_refused_naming_the_shortfall() -> None:
    with pytest.raises(GpuShortfall) as refused:
        plan_gpus(parse_classes("gpu.24gb:2"), machine(RTX))
    assert str(refused.value) == (
        "executor class 'gpu.24gb' needs 2 GPU(s) with ≥ 24576 MB (2 executor(s) × 1 GPU(s)), "
        "but only 1 of this machine's 1 GPU(s) fit"
    )


def test_gpus_too_small_or_of_another_model_are_named() -> None:
    with pytest.raises(GpuShortfall, match=r"GPU 0 24564 MB < 81920 MB"):
        plan_gpus(parse_classes("gpu.80gb:1"), machine(RTX))
    with pytest.raises(GpuShortfall, match=r"GPU 0 'NVIDIA GeForce RTX 4090' is not a 'H100'"):
        plan_gpus(parse_classes("gpu.24gb:1:0:gpu_model=H100"), machine(RTX))
    with pytest.raises(GpuShortfall, match=r"GPU 0 is taken by another class"):
        plan_gpus(parse_classes("gpu.24gb:1,mine:1:0:cpu=1:memory_mb=64:gpus=1"), machine(RTX))


def test_no_gpu_class_needs_no_discovery() -> None:
    assert check_gpus(parse_classes("cpu.small:4:2,gpu.24gb:0"), python="/nonexistent/python") is None


def test_a_machine_without_gpus_refuses_a_gpu_class_and_says_why(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GpuShortfall, match=r"needs 1 GPU.*0 of this machine's 0 GPU.*nor nvidia-smi is installed"):
        check_gpus(parse_classes("gpu.24gb:1"), python=sys.executable)


def test_discovery_runs_the_executor_package_in_a_process(tmp_path: Path, monkeypatch) -> None:
    write_fake_smi(tmp_path, [FakeGpu("GPU-smi-0"), FakeGpu("GPU-smi-1", name="NVIDIA L4", memory_mb=23034)])
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    gpus, notes = discover(sys.executable)
    assert gpus == [
        Gpu(0, "GPU-smi-0", "NVIDIA GeForce RTX 4090", 24564),
        Gpu(1, "GPU-smi-1", "NVIDIA L4", 23034),
    ]
    assert notes == []
    assert discover("/nonexistent/python")[1][0].startswith("GPU discovery")


def test_a_class_key_gpu_share_must_be_positive() -> None:
    with pytest.raises(ValueError, match="gpu_share must be a whole number"):
        parse_classes("gpu.24gb:1:0:gpu_share=0")
    assert parse_classes("gpu.24gb:4:0:gpu_share=2")["gpu.24gb"].gpu_share == 2


def test_the_spec_leaves_out_an_unset_gpu_model_on_the_wire() -> None:
    plain = ClassCapacity(total=1, free=1, spec=ClassSpec(cpu=1, memory_mb=64))
    assert "gpu_model" not in plain.model_dump_json()
    named = ClassSpec(cpu=8, memory_mb=64, gpus=1, gpu_memory_mb=24576, gpu_model="NVIDIA L4")
    assert ClassSpec.model_validate_json(named.model_dump_json()) == named
    assert str(named) == "8 cpu, 64 MB, 1 gpu × 24576 MB (NVIDIA L4)"


# -- the pool --------------------------------------------------------------------------------------


async def test_the_pool_starts_each_executor_with_its_own_gpus(spawner: FakeSpawner) -> None:
    classes = parse_classes("cpu.small:1:1,gpu.24gb:2:2")
    pool = ExecutorPool(classes, spawner, gpus=plan_gpus(classes, machine(RTX, RTX)))  # type: ignore[arg-type]
    pool.ensure_warm()
    await settle()
    started = {pool.slots[hotkey].executor_class: [] for hotkey in spawner.gpus}
    for hotkey, gpus in spawner.gpus.items():
        started[pool.slots[hotkey].executor_class].append(gpus)
    assert started == {"cpu.small": [()], "gpu.24gb": [("GPU-0",), ("GPU-1",)]}


async def test_a_released_executors_gpu_goes_to_its_replacement(spawner: FakeSpawner) -> None:
    classes = parse_classes("gpu.24gb:2:2")
    pool = ExecutorPool(classes, spawner, gpus=plan_gpus(classes, machine(RTX, RTX)))  # type: ignore[arg-type]
    pool.ensure_warm()
    await settle()
    first = next(slot for slot in pool.slots.values() if slot.gpus == ("GPU-1",))
    pool.release(first)
    await settle()
    assert sorted(slot.gpus for slot in pool.slots.values()) == [("GPU-0",), ("GPU-1",)]
    assert spawner.gpus[spawner.keypairs[-1].hotkey] == ("GPU-1",)


async def test_the_manifest_names_the_gpu_model_and_memory(spawner: FakeSpawner) -> None:
    classes = parse_classes("gpu.24gb:1,mine:1:0:cpu=2:memory_mb=512:gpus=1")
    pool = ExecutorPool(classes, spawner, gpus=plan_gpus(classes, machine(RTX, H100)))  # type: ignore[arg-type]
    manifest = pool.manifest()
    assert manifest["gpu.24gb"].spec.gpu_model == "NVIDIA GeForce RTX 4090"  # type: ignore[union-attr]
    assert manifest["gpu.24gb"].spec.gpu_memory_mb == 24576  # type: ignore[union-attr]
    assert manifest["mine"].spec == ClassSpec(
        cpu=2, memory_mb=512, gpus=1, gpu_memory_mb=81559, gpu_model="NVIDIA H100 80GB HBM3"
    )
