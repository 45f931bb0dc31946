"""Grids that run docker jobs and move real data: a real engine, the facilitator's store (local or
S3 on a moto server), and a loopback HTTP server standing for the client's own URLs.

Every grid here lets executors reach loopback URLs (``GRID_EXECUTOR_ALLOW_PRIVATE_URLS``): the
client's "remote" servers are on 127.0.0.1 in tests. Limits are small so that the bad-input
tests stay fast.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grid.local import LocalGrid, free_port
from tests.executor.conftest import docker_client, docker_engine  # noqa: F401 (fixtures)
from tests.executor.httpserver import Server, serve
from tests.facilitator.storage.conftest import S3_CREDENTIALS, s3_admin, s3_server  # noqa: F401 (fixtures)
from tests.integration.conftest import RUNNING, pytest_runtest_makereport  # noqa: F401 (logs of failing tests)

MAX_LOG = 64 * 1024
MAX_INPUT = 1024 * 1024


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.slow)


def start_docker_grid(home: Path, **extra_env: str) -> LocalGrid:
    grid = LocalGrid(
        home,
        facilitator_port=free_port(),
        miner_port=free_port(),
        executor_classes="cpu.small:2:1",
        runtime="docker",
        extra_env={
            "GRID_REDELIVER_S": "0.5",
            "GRID_EXECUTOR_ALLOW_PRIVATE_URLS": "1",
            "GRID_EXECUTOR_MAX_OUTPUT": "4096",
            "GRID_EXECUTOR_MAX_LOG": str(MAX_LOG),
            "GRID_EXECUTOR_MAX_INPUT": str(MAX_INPUT),
            "GRID_EXECUTOR_PRELOAD_IMAGES": "gridtest/busybox:latest",
            "GRID_EXECUTOR_WORK_ROOT": str(home / "work"),
            **extra_env,
        },
    )
    grid.start(timeout=60)
    RUNNING.append(grid)
    return grid


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, docker_engine: str) -> Iterator[LocalGrid]:  # noqa: F811
    grid = start_docker_grid(tmp_path_factory.mktemp("grid"))
    try:
        yield grid
    finally:
        grid.stop()


@pytest.fixture(scope="module")
def s3_grid(
    tmp_path_factory: pytest.TempPathFactory,
    docker_engine: str,  # noqa: F811
    s3_server: str,  # noqa: F811
    s3_admin: Any,  # noqa: F811
) -> Iterator[LocalGrid]:
    bucket = f"grid-{uuid.uuid4().hex[:12]}"
    s3_admin.create_bucket(Bucket=bucket)
    grid = start_docker_grid(
        tmp_path_factory.mktemp("s3grid"),
        GRID_STORAGE="s3",
        GRID_S3_BUCKET=bucket,
        GRID_S3_ENDPOINT_URL=s3_server,
        GRID_S3_REGION=S3_CREDENTIALS["region_name"],
        GRID_S3_ADDRESSING_STYLE="path",
        AWS_ACCESS_KEY_ID=S3_CREDENTIALS["access_key_id"],
        AWS_SECRET_ACCESS_KEY=S3_CREDENTIALS["secret_access_key"],
    )
    grid.bucket = bucket  # type: ignore[attr-defined]
    try:
        yield grid
    finally:
        grid.stop()


@pytest.fixture
def web() -> Iterator[Server]:
    """The client's own web server: input URLs and pre-signed output URLs, on loopback."""
    with serve() as running:
        yield running


@pytest.fixture
def client_key(tmp_path: Path) -> Path:
    return tmp_path / "client.key"
