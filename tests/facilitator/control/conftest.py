"""A real local grid with its control plane served, and stock ArmoniK clients over signed channels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from facilitator_sdk.control import signed_channel
from grid.local import LocalGrid, free_port
from protocol.keys import Keypair
from tests.integration.conftest import RUNNING


@pytest.fixture(scope="package")
def control_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    grid = LocalGrid(
        tmp_path_factory.mktemp("control-grid"),
        facilitator_port=free_port(),
        miner_port=free_port(),
        control_port=free_port(),
        executor_classes="cpu.small:2:1",
    )
    grid.start(timeout=60)
    RUNNING.append(grid)
    try:
        yield grid
    finally:
        grid.stop()
        RUNNING.remove(grid)


@pytest.fixture
def keypair() -> Keypair:
    return Keypair.generate()


@pytest.fixture
def channel(control_grid: LocalGrid, keypair: Keypair) -> Iterator[grpc.Channel]:
    """A channel signing as a client of its own (a fresh key: it sees no one else's sessions)."""
    assert control_grid.control_endpoint is not None
    with signed_channel(control_grid.control_endpoint, keypair) as channel:
        yield channel


def key_file(tmp_path: Path, keypair: Keypair) -> Path:
    path = tmp_path / "client.key"
    keypair.save(path)
    return path
