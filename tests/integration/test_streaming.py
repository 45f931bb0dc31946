"""Streaming jobs through the whole chain of real processes, on the process runtime.

The sample app (examples/streaming_echo) runs as the job; the SDK talks to it through the
executor's gateway over real TLS, exactly as a client on another machine would.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from facilitator_sdk import AsyncClient, Client, JobError, JobSpec
from facilitator_sdk.errors import StreamBrokenError, StreamingConnectionError
from grid.local import LocalGrid, free_port
from protocol.streaming import verify_evidence
from tests.integration.conftest import running_grid

APP = Path(__file__).resolve().parents[2] / "examples" / "streaming_echo" / "app.py"
HUNDRED_MB = 100 * 1024 * 1024
PATTERN = bytes(range(256))


def streaming(*, timing: dict[str, float] | None = None, **spec: object) -> JobSpec:
    return JobSpec(
        command=[sys.executable, str(APP)], streaming=True, timing={"execution": 120, **(timing or {})}, **spec
    )


def expected_sha256(size: int) -> str:
    """sha256 of /bytes?size=N: byte i is i % 256."""
    digest = hashlib.sha256()
    whole, rest = divmod(size, len(PATTERN))
    block = PATTERN * 4096
    for _ in range(whole // 4096):
        digest.update(block)
    digest.update(PATTERN * (whole % 4096) + PATTERN[:rest])
    return digest.hexdigest()


@pytest.fixture(scope="module")
def one_port_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    """A miner with four executors but a single streaming port: the second streaming job finds none."""
    port = free_port()
    with running_grid(
        tmp_path_factory.mktemp("one-port"), "cpu.small:4:2", GRID_STREAMING_PORTS=f"{port}-{port}"
    ) as grid:
        yield grid


def test_a_hundred_megabytes_stream_each_way_whole_and_sealed(
    grid: LocalGrid, client_key: Path, tmp_path: Path
) -> None:
    upload = tmp_path / "upload.bin"
    with upload.open("wb") as fh:
        for _ in range(HUNDRED_MB // (4096 * 256)):
            fh.write(PATTERN * 4096)
    with Client(grid.facilitator_url, client_key) as client:
        job = client.create_job(streaming())
        job.wait_for_streaming(timeout=60)
        with job.stream_client() as stream:
            digest, size = hashlib.sha256(), 0
            with stream.stream("GET", f"/bytes?size={HUNDRED_MB}") as reply:
                for chunk in reply.iter_bytes():
                    digest.update(chunk)
                    size += len(chunk)
            assert (size, digest.hexdigest()) == (HUNDRED_MB, expected_sha256(HUNDRED_MB))
            assert reply.evidence is not None and reply.evidence.seal.complete
            verify_evidence(reply.evidence)
            with upload.open("rb") as body:  # hashed by the SDK, then streamed from where it stands
                echoed = stream.post("/sha256", content=body)
            assert echoed.json() == {"sha256": expected_sha256(HUNDRED_MB), "size": HUNDRED_MB}
            verify_evidence(echoed.evidence)
            job.terminate()
        client.wait(job, timeout=60)
    assert job.status == "completed", job.failure


async def test_thirty_two_concurrent_clients_on_one_job_each_get_their_own_verified_replies(
    grid: LocalGrid, client_key: Path
) -> None:
    async with AsyncClient(grid.facilitator_url, client_key) as client:
        job = await client.create_job(streaming())
        await job.wait_for_streaming(timeout=60)

        async def one_client(n: int) -> list[bytes]:
            async with job.stream_client() as stream:
                bodies = []
                for i in range(5):
                    reply = await stream.post("/echo", content=f"client {n} request {i}".encode())
                    assert reply.status_code == 200
                    verify_evidence(reply.evidence)
                    bodies.append(reply.content)
                async with stream.websocket("/ws") as ws:
                    await ws.send(f"upper:client {n}")
                    assert await ws.recv() == f"CLIENT {n}"
                return bodies

        results = await asyncio.gather(*(one_client(n) for n in range(32)))
        for n, bodies in enumerate(results):
            assert bodies == [f"client {n} request {i}".encode() for i in range(5)]
        await job.terminate()
        await client.wait(job, timeout=60)
    assert job.status == "completed", job.failure


def test_a_job_that_crashes_mid_stream_breaks_the_stream_and_fails(grid: LocalGrid, client_key: Path) -> None:
    with Client(grid.facilitator_url, client_key) as client:
        job = client.create_job(streaming())
        job.wait_for_streaming(timeout=60)
        received = 0
        with (
            job.stream_client() as stream,
            pytest.raises(StreamBrokenError) as broken,
            stream.stream("GET", "/crash?after=3&delay=0.05") as reply,
        ):
            for chunk in reply.iter_bytes():
                received += len(chunk)
        assert received > 0
        assert broken.value.evidence.seal.complete is False
        verify_evidence(broken.value.evidence)
        client.wait(job, timeout=60)
    assert job.status == "failed"
    assert (job.failure["stage"], job.failure["reason"]) == ("execution", "nonzero_exit")
    assert job.failure["exit_code"] == 3


def test_a_job_that_never_answers_health_fails_streaming_not_ready(grid: LocalGrid, client_key: Path) -> None:
    with Client(grid.facilitator_url, client_key) as client:
        job = client.create_job(streaming(env={"ECHO_NEVER_READY": "1"}, timing={"streaming_start": 2}))
        with pytest.raises(JobError):
            job.wait_for_streaming(timeout=60)
    assert job.status == "failed"
    assert (job.failure["stage"], job.failure["reason"]) == ("streaming_start", "streaming_not_ready")
    assert "within 2s" in job.failure["message"]
    assert "streaming_ready" not in [event["status"] for event in job.history]


def test_the_time_limit_ends_a_streaming_job_as_completed(grid: LocalGrid, client_key: Path) -> None:
    with Client(grid.facilitator_url, client_key) as client:
        job = client.create_job(streaming(timing={"execution": 3}))
        job.wait_for_streaming(timeout=60)
        with job.stream_client() as stream:
            assert stream.post("/echo", content=b"still here").content == b"still here"
        client.wait(job, timeout=60)
        assert job.status == "completed", job.failure
        with job.stream_client(timeout=2) as stream, pytest.raises(StreamingConnectionError):
            stream.post("/echo", content=b"too late")


def test_no_free_streaming_port_rejects_the_job_with_its_reason(one_port_grid: LocalGrid, client_key: Path) -> None:
    with Client(one_port_grid.facilitator_url, client_key) as client:
        first = client.create_job(streaming())
        first.wait_for_streaming(timeout=60)
        second = client.create_job(streaming())
        client.wait(second, timeout=60)
        assert second.status == "rejected"
        assert (second.failure["stage"], second.failure["reason"]) == ("reservation", "no_streaming_port")
        assert "every streaming port of this miner is taken" in second.failure["message"]
        first.terminate()
        client.wait(first, timeout=60)
        assert first.status == "completed", first.failure
        # the port is free again once the first job ended
        third = client.create_job(streaming())
        third.wait_for_streaming(timeout=60)
        assert third.streaming.readiness.port == first.streaming.readiness.port
        third.terminate()
        client.wait(third, timeout=60)
        assert third.status == "completed", third.failure
