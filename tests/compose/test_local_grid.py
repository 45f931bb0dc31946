"""compose/local-grid.yml brought up with docker-compose, as an operator would, and used from the host.

The images come from scripts/build_images.sh (CI's scripts/test.sh builds them first); the
override puts the application services on ports of their own, on the host's network bound to
127.0.0.1, never on a bridge. The SDK on the host runs a batch job and a streaming job through the
stack, the miner service is restarted under a running job, and ``down -v`` must leave nothing.

The tests of this module run in order and share one stack: the last one takes it down.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facilitator_sdk import Client, JobSpec, Output
from tests.compose.stack import FACILITATOR, LONG_RUNNING, ONE_SHOT, PORTS, PROJECT, Stack, images_missing, port_open
from tests.executor.conftest import docker_client, docker_engine  # noqa: F401 (fixtures)

BUSYBOX = "gridtest/busybox:latest"
STREAMING = "gridtest/streaming:latest"

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.compose]


@pytest.fixture(scope="module")
def stack(docker_engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # noqa: F811
    missing = images_missing(docker_engine)
    if missing:
        message = f"images {missing} are missing: build them with scripts/build_images.sh"
        if os.environ.get("GRID_REQUIRE_COMPOSE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    stack = Stack(docker_engine, tmp_path_factory.mktemp("miner-work"))
    stack.compose("down", "-v", "--remove-orphans")  # what an interrupted run left
    taken = [port for port in PORTS if port_open(port)]
    assert not taken, f"ports of local-grid.yml already taken on 127.0.0.1: {taken}"
    try:
        stack.compose("up", "-d", "--no-color", timeout=600)
        stack.wait_healthy(LONG_RUNNING)
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans")


@pytest.fixture
def client(tmp_path: Path, stack: Stack) -> Iterator[Client]:
    with Client(FACILITATOR, tmp_path / "client.key") as client:
        yield client


def test_every_service_is_healthy_and_the_one_shot_services_succeeded(stack: Stack) -> None:
    state = stack.containers()
    assert set(state) == LONG_RUNNING | ONE_SHOT
    for name in LONG_RUNNING:
        assert (state[name]["status"], state[name]["health"]) == ("running", "healthy"), name
    for name in ONE_SHOT:
        assert (state[name]["status"], state[name]["exit"]) == ("exited", 0), name
    # Only the application's ports answer, and only on loopback (the override binds 127.0.0.1).
    assert all(port_open(port) for port in PORTS)


def test_a_batch_job_runs_on_the_miners_docker_engine(stack: Stack, client: Client, tmp_path: Path) -> None:
    job = client.create_job(
        JobSpec(
            image=BUSYBOX,
            command=["sh", "-c", "id -u; echo stored > /output/out.txt"],
            outputs=[Output.object("out.txt")],
        )
    )
    client.wait(job, timeout=120)
    assert job.status == "completed", job.failure
    assert job.result.download("stdout", tmp_path / "stdout").read_text() == "65534\n"
    assert job.result.download("out.txt", tmp_path / "out.txt").read_text() == "stored\n"

    failing = client.create_job(JobSpec(image=BUSYBOX, command=["sh", "-c", "exit 3"]))
    client.wait(failing, timeout=120)
    assert failing.status == "failed"
    assert (failing.failure["reason"], failing.failure["exit_code"]) == ("nonzero_exit", 3)


def test_a_streaming_job_serves_the_host_until_terminated(stack: Stack, client: Client) -> None:
    job = client.create_job(
        JobSpec(image=STREAMING, command=["python3", "/app/app.py"], streaming=True, timing={"execution": 120})
    )
    job.wait_for_streaming(timeout=120)
    with job.stream_client() as stream:
        reply = stream.post("/echo", content=b"through compose")
        assert (reply.status_code, reply.content) == (200, b"through compose")
        with stream.stream("GET", "/tokens?n=5&delay=0.01&prompt=compose") as tokens:
            assert len(b"".join(tokens.iter_bytes()).split()) == 5
    job.terminate()
    client.wait(job, timeout=120)
    assert job.status == "completed", job.failure


def test_a_job_running_when_the_miner_restarts_ends_infra_failed(
    stack: Stack,
    client: Client,
    docker_client: Any,  # noqa: F811
) -> None:
    job = client.create_job(JobSpec(image=BUSYBOX, command=["sleep", "300"], timing={"execution": 600}))
    deadline = time.monotonic() + 120
    # Executing: its volumes are ready (the last status before execution_done) and its container runs.
    while job.status != "volumes_ready" or not docker_client.containers.list(filters={"label": "gridmarket.job"}):
        assert time.monotonic() < deadline, f"the job's container never ran: {job.status}"
        assert not job.done, job.failure
        time.sleep(0.5)
        job = client.get_job(job.job_id)

    stack.compose("restart", "miner")
    client.wait(job, timeout=120)
    assert job.status == "infra_failed"
    assert job.failure["reason"] in {"miner_disconnected", "executor_disconnected"}, job.failure

    # The miner is back: its old job container is gone and a new job completes.
    stack.wait_healthy({"miner"})
    deadline = time.monotonic() + 60
    while docker_client.containers.list(all=True, filters={"label": "gridmarket.job"}):
        assert time.monotonic() < deadline, "the restarted miner left the old job's container running"
        time.sleep(1)
    again = client.create_job(JobSpec(image=BUSYBOX, command=["echo", "back"]))
    client.wait(again, timeout=120)
    assert again.status == "completed", again.failure


def test_down_leaves_nothing_behind(stack: Stack, docker_client: Any) -> None:  # noqa: F811
    stack.compose("down", "-v", "--remove-orphans")
    assert stack.containers() == {}
    volumes = stack.docker("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}").split()
    assert volumes == []
    assert docker_client.containers.list(all=True, filters={"label": "gridmarket.job"}) == []
    assert [port for port in PORTS if port_open(port)] == []
    assert list(stack.work_dir.iterdir()) == []
