"""Stores by alias from ``settings.GRID_STORAGES``."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from facilitator.storage import StorageMisconfigured, get_store
from facilitator.storage.handler import StorageHandler
from facilitator.storage.local import LocalObjectStore
from facilitator.storage.memory import MemoryObjectStore


def test_short_names_and_dotted_paths() -> None:
    handler = StorageHandler(
        {
            "fast": {"BACKEND": "memory"},
            "dotted": {"BACKEND": "facilitator.storage.memory.MemoryObjectStore", "OPTIONS": {"max_size": 5}},
        }
    )
    assert isinstance(handler["fast"], MemoryObjectStore)
    assert handler["dotted"].max_size == 5
    assert handler["dotted"].alias == "dotted"
    assert repr(handler["dotted"]) == "<MemoryObjectStore 'dotted'>"


def test_one_instance_per_alias() -> None:
    handler = StorageHandler({"a": {"BACKEND": "memory"}, "b": {"BACKEND": "memory"}})
    assert handler["a"] is handler["a"]
    assert handler["a"] is not handler["b"]


def test_override_settings_starts_over(tmp_path: Path) -> None:
    with override_settings(GRID_STORAGES={"default": {"BACKEND": "memory"}}):
        first = get_store()
        assert get_store() is first
    with override_settings(GRID_STORAGES={"default": {"BACKEND": "local", "OPTIONS": {"root": str(tmp_path)}}}):
        assert isinstance(get_store(), LocalObjectStore)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "GRID_STORAGES['x']: no such alias"),
        ({"x": {"OPTIONS": {}}}, "GRID_STORAGES['x']: BACKEND is missing"),
        ({"x": {"BACKEND": "loacl"}}, "unknown backend 'loacl'; did you mean 'local'?"),
        ({"x": {"BACKEND": "ftp"}}, "unknown backend 'ftp'; known: local, memory, s3"),
        ({"x": {"BACKEND": "facilitator.storage.nope.Store"}}, "cannot import backend"),
        ({"x": {"BACKEND": "memory", "OPTIONS": {"colour": "red"}}}, "bad OPTIONS for 'memory'"),
        ({"x": {"BACKEND": "s3", "OPTIONS": {}}}, "bad OPTIONS for 's3'"),
    ],
)
def test_misconfiguration_names_the_alias(config: dict, message: str) -> None:
    with pytest.raises(StorageMisconfigured) as caught:
        StorageHandler(config)["x"]
    assert isinstance(caught.value, ImproperlyConfigured)
    assert caught.value.alias == "x"
    assert message in str(caught.value)
