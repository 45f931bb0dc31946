"""The Docker engine client of the docker runtime (DESIGN.md §5).

The engine is ``DOCKER_HOST`` from the environment (``docker.from_env()``), else the engine
given explicitly; the client negotiates the API version with the daemon itself.
"""

from __future__ import annotations

import os

import docker
import requests
from docker.errors import DockerException

from executor.errors import EngineUnavailable

__all__ = ["EngineUnavailable", "connect"]


def connect(base_url: str | None = None) -> docker.DockerClient:
    """A client for the engine at ``base_url`` (default: ``DOCKER_HOST``), checked with a ping.

    Blocking: call it from a thread in async code.

    Raises:
        EngineUnavailable: the engine cannot be reached, with its address and the cause chained.
    """
    where = base_url or os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST is not set)"
    try:
        client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
        client.ping()
    except (DockerException, requests.RequestException, OSError) as exc:
        raise EngineUnavailable(
            f"cannot reach the Docker engine at {where}: {exc} "
            "(start it, e.g. scripts/docker_engine.sh, and export DOCKER_HOST)"
        ) from exc
    return client
