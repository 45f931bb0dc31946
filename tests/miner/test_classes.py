"""Executor classes from ``GRID_EXECUTOR_CLASSES`` (miner/executors/classes.py)."""

from __future__ import annotations

import pytest

from miner.executors.classes import ClassConfig, parse_classes


def test_parse_classes_reads_name_total_and_warm() -> None:
    assert parse_classes("cpu.small:4:2,gpu.24gb:1:0") == {
        "cpu.small": ClassConfig("cpu.small", total=4, warm=2),
        "gpu.24gb": ClassConfig("gpu.24gb", total=1, warm=0),
    }


def test_parse_classes_warm_defaults_to_zero() -> None:
    assert parse_classes("cpu.large:3") == {"cpu.large": ClassConfig("cpu.large", total=3, warm=0)}


def test_parse_classes_ignores_blanks_and_empty_entries() -> None:
    assert parse_classes(" cpu.small:2:1 , ,gpu:1 ,") == {
        "cpu.small": ClassConfig("cpu.small", 2, 1),
        "gpu": ClassConfig("gpu", 1, 0),
    }


@pytest.mark.parametrize("value", ["", " ", ","])
def test_parse_classes_of_nothing_is_no_class(value: str) -> None:
    assert parse_classes(value) == {}


def test_a_class_may_offer_zero_executors() -> None:
    assert parse_classes("gpu:0:0") == {"gpu": ClassConfig("gpu", 0, 0)}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cpu.small", "executor class 'cpu.small' must look like NAME:TOTAL[:WARM]"),
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
