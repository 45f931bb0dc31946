"""A real local grid with its control plane served, and stock ArmoniK clients over signed channels."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks

from facilitator_sdk.control import signed_channel
from grid.local import LocalGrid, free_port
from protocol.armonik_api.protos import partitions_pb2, partitions_pb2_grpc
from protocol.keys import Keypair
from tests.integration.conftest import RUNNING


@contextlib.contextmanager
def running_grid(home: Path, **options: object) -> Iterator[LocalGrid]:
    """A local grid with its control plane served, once the miner's classes are partitions; stopped after."""
    grid = LocalGrid(home, facilitator_port=free_port(), miner_port=free_port(), control_port=free_port(), **options)  # type: ignore[arg-type]
    grid.start(timeout=60)
    RUNNING.append(grid)
    try:
        _wait_for_partitions(grid, {c.split(":")[0] for c in grid.executor_classes.split(",")})
        yield grid
    finally:
        grid.stop()
        RUNNING.remove(grid)


@contextlib.contextmanager
def control_proxy(endpoint: str, key: Path) -> Iterator[str]:
    """``grid control-proxy`` as a process of its own, signing with ``key``: the address it listens on."""
    process = subprocess.Popen(
        [sys.executable, "-m", "grid.cli", "control-proxy", "--control", endpoint,
         "--key", str(key), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("control proxy: 127.0.0.1:"), line
        yield line.split()[2]
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="package")
def control_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    with running_grid(
        tmp_path_factory.mktemp("control-grid"),
        executor_classes="cpu.small:2:1,cpu.large:1:0",
        extra_env={"GRID_CONTROL_DISPATCH": "0"},  # the engine alone: queued tasks stay queued (test_run.py runs them)
    ) as grid:
        yield grid


def _wait_for_partitions(grid: LocalGrid, wanted: set[str], timeout: float = 30.0) -> None:
    """Until the miner's classes have reached the facilitator (manifest → validator → capacity)."""
    assert grid.control_endpoint is not None
    deadline = time.monotonic() + timeout
    with signed_channel(grid.control_endpoint, Keypair.generate()) as channel:
        stub = partitions_pb2_grpc.PartitionsStub(channel)
        while True:
            listed = stub.ListPartitions(partitions_pb2.ListPartitionsRequest(page_size=100))
            if wanted <= {p.id for p in listed.partitions}:
                return
            assert time.monotonic() < deadline, f"partitions {wanted} never offered: {listed}"
            time.sleep(0.1)


@pytest.fixture
def keypair() -> Keypair:
    return Keypair.generate()


@pytest.fixture
def channel(control_grid: LocalGrid, keypair: Keypair) -> Iterator[grpc.Channel]:
    """A channel signing as a client of its own (a fresh key: it sees no one else's sessions)."""
    assert control_grid.control_endpoint is not None
    with signed_channel(control_grid.control_endpoint, keypair) as channel:
        yield channel


@pytest.fixture
def sessions(channel: grpc.Channel) -> ArmoniKSessions:
    return ArmoniKSessions(channel)


@pytest.fixture
def results(channel: grpc.Channel) -> ArmoniKResults:
    return ArmoniKResults(channel)


@pytest.fixture
def tasks(channel: grpc.Channel) -> ArmoniKTasks:
    return ArmoniKTasks(channel)


def key_file(tmp_path: Path, keypair: Keypair) -> Path:
    path = tmp_path / "client.key"
    keypair.save(path)
    return path
