"""Executor classes from ``GRID_EXECUTOR_CLASSES`` (miner/executors/classes.py)."""

from __future__ import annotations

import pytest

from miner.executors.classes import ClassConfig, parse_classes
from protocol.classes import STANDARD_CLASSES, ClassSpec

SMALL, GPU = STANDARD_CLASSES["cpu.small"], STANDARD_CLASSES["gpu.24gb"]


def test_parse_classes_reads_name_total_and_warm_and_brings_standard_specs() -> None:
    assert parse_classes("cpu.small:4:2,gpu.24gb:1:0") == {
        "cpu.small": ClassConfig("cpu.small", total=4, warm=2, spec=SMALL),
        "gpu.24gb": ClassConfig("gpu.24gb", total=1, warm=0, spec=GPU),
    }


def test_parse_classes_warm_defaults_to_zero() -> None:
    large = STANDARD_CLASSES["cpu.large"]
    assert parse_classes("cpu.large:3") == {"cpu.large": ClassConfig("cpu.large", total=3, warm=0, spec=large)}


def test_parse_classes_ignores_blanks_and_empty_entries() -> None:
    assert parse_classes(" cpu.small:2:1 , ,gpu:1 ,") == {
        "cpu.small": ClassConfig("cpu.small", 2, 1, SMALL),
        "gpu": ClassConfig("gpu", 1, 0),
    }


def test_a_custom_class_sets_its_spec_and_a_standard_one_can_be_overridden() -> None:
    classes = parse_classes("mine.big:2:1:cpu=16:memory_mb=65536:gpus=2:gpu_memory_mb=1000,cpu.small:1:memory_mb=512")
    assert classes["mine.big"].spec == ClassSpec(cpu=16, memory_mb=65536, gpus=2, gpu_memory_mb=1000)
    assert classes["mine.big"].warm == 1
    assert classes["cpu.small"].spec == ClassSpec(cpu=SMALL.cpu, memory_mb=512)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x:1:cpu=lots", "executor class 'x:1:cpu=lots': cpu: Input should be a valid number"),
        ("x:1:disk=5", "executor class 'x:1:disk=5': unknown key 'disk'"),
        ("x:1:cpu=1:2", "executor class 'x:1:cpu=1:2': KEY=VALUE parts come last"),
        ("x:1:cpu=2", "executor class 'x:1:cpu=2': memory_mb: Field required"),
        ("x:1:cpu=0:memory_mb=64", "executor class 'x:1:cpu=0:memory_mb=64': cpu: Input should be greater than 0"),
    ],
)
def test_a_malformed_class_spec_is_refused_quoting_it(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_classes(value)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("value", ["", " ", ","])
def test_parse_classes_of_nothing_is_no_class(value: str) -> None:
    assert parse_classes(value) == {}


def test_a_class_may_offer_zero_executors() -> None:
    assert parse_classes("gpu:0:0") == {"gpu": ClassConfig("gpu", 0, 0)}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cpu.small", "executor class 'cpu.small' must look like NAME:TOTAL[:WARM][:KEY=VALUE...]"),
        ("cpu.small:four", "executor class 'cpu.small:four': TOTAL and WARM must be whole numbers"),
        ("cpu.small:4:two", "executor class 'cpu.small:4:two': TOTAL and WARM must be whole numbers"),
        ("cpu.small:", "executor class 'cpu.small:': TOTAL and WARM must be whole numbers"),
        ("cpu.small:1:2", "executor class 'cpu.small:1:2': need 0 <= WARM <= TOTAL"),
        ("cpu.small:-1", "executor class 'cpu.small:-1': need 0 <= WARM <= TOTAL"),
        ("cpu.small:2:-1", "executor class 'cpu.small:2:-1': need 0 <= WARM <= TOTAL"),
    ],
)
def test_parse_classes_refuses_a_malformed_entry_quoting_it(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_classes(f"ok:1:1,{value}")
    assert str(info.value) == message


@pytest.mark.parametrize("value", ["cpu.small:2:1:9", ":2:1"])
def test_parse_classes_refuses_extra_fields_and_an_empty_name(value: str) -> None:
    with pytest.raises(ValueError, match=f"^executor class '{value}'"):
        parse_classes(value)


def test_parse_classes_refuses_a_class_without_a_name() -> None:
    with pytest.raises(ValueError, match="executor class ':2:1' has no name"):
        parse_classes(":2:1")


def test_parse_classes_refuses_a_class_listed_twice() -> None:
    with pytest.raises(ValueError, match="executor class 'cpu' is listed twice"):
        parse_classes("cpu:1:0,cpu:2:1")
