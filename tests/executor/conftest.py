"""Fixtures of the executor tests: a real Docker engine and the test images (docs/docker.md)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.executor.httpserver import Server, serve

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _script(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(SCRIPTS / args[0]), *args[1:]], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"{args[0]} exited with {result.returncode}:\n{result.stderr[-2000:]}", pytrace=False)
    return result.stdout.strip()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[str]:
    """Start (or find) the engine, build the test images if missing, and export DOCKER_HOST."""
    host = _script("docker_engine.sh")
    _script("build_test_images.sh", env={**os.environ, "DOCKER_HOST": host})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", host)
        yield host


@pytest.fixture(scope="session")
def docker_client(docker_engine: str) -> Iterator[Any]:
    """A ``docker.DockerClient`` for checks from the outside (imported here: the package is optional)."""
    from executor.runtimes.docker_client import connect

    client = connect(docker_engine)
    yield client
    client.close()


@pytest.fixture
def server() -> Iterator[Server]:
    """A real HTTP server on loopback whose routes the test sets (tests/executor/httpserver.py)."""
    with serve() as running:
        yield running
