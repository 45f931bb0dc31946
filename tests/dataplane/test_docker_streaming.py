"""Streaming jobs in docker containers through the whole chain: the sample app's image
(gridtest/streaming, examples/streaming_echo) behind the executor's gateway, over real TLS.

The container runs with network ``host`` (its server listens on the host's loopback ``PORT``;
the gateway is its only way in) and the same limits as a batch job otherwise.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from facilitator_sdk import Client, JobSpec
from facilitator_sdk.errors import StreamBrokenError
from grid.local import LocalGrid
from protocol.streaming import verify_evidence
from tests.dataplane.test_docker_data import assert_nothing_left_behind

STREAMING_IMAGE = "gridtest/streaming:latest"
TEN_MB = 10 * 1024 * 1024


def streaming(**spec: Any) -> JobSpec:
    timing = {"execution": 120, **spec.pop("timing", {})}
    return JobSpec(image=STREAMING_IMAGE, command=["python3", "/app/app.py"], streaming=True, timing=timing, **spec)


def test_a_docker_streaming_job_serves_every_kind_of_reply_until_terminated(
    grid: LocalGrid, client_key: Path, tmp_path: Path, docker_client: Any
) -> None:
    with Client(grid.facilitator_url, client_key) as client:
        job = client.create_job(streaming())
        endpoint = job.wait_for_streaming(timeout=90)
        assert endpoint.miner_hotkey == job.miner
        with job.stream_client() as stream:
            reply = stream.post("/echo", content=b"from the client")
            assert (reply.status_code, reply.content) == (200, b"from the client")
            with stream.stream("GET", "/tokens?n=8&delay=0.01&prompt=docker") as tokens:
                words = b"".join(tokens.iter_bytes()).split()
            assert len(words) == 8
            digest, size = hashlib.sha256(), 0
            with stream.stream("GET", f"/bytes?size={TEN_MB}") as data:
                for chunk in data.iter_bytes():
                    digest.update(chunk)
                    size += len(chunk)
            assert size == TEN_MB
            assert digest.hexdigest() == hashlib.sha256(bytes(range(256)) * (TEN_MB // 256)).hexdigest()
            with stream.websocket("/ws") as ws:
                ws.send("upper:container")
                assert ws.recv() == "CONTAINER"
                ws.send(b"\x00\x01")
                assert ws.recv() == b"\x00\x01"
            for evidence in (reply.evidence, tokens.evidence, data.evidence, ws.evidence):
                assert evidence is not None
                verify_evidence(evidence)
        job.terminate()
        client.wait(job, timeout=90)
        assert job.status == "completed", job.failure
        # the job's own log of what it served came back like a batch job's
        stderr = job.result.download("stderr", tmp_path / "stderr").read_text()
        assert '"POST /echo HTTP/1.1" 200' in stderr
    assert_nothing_left_behind(grid, docker_client)


def test_a_docker_streaming_job_that_crashes_mid_stream_fails(
    grid: LocalGrid, client_key: Path, docker_client: Any
) -> None:
    with Client(grid.facilitator_url, client_key) as client:
        job = client.create_job(streaming())
        job.wait_for_streaming(timeout=90)
        with (
            job.stream_client() as stream,
            pytest.raises(StreamBrokenError) as broken,
            stream.stream("GET", "/crash?after=2&delay=0.05") as reply,
        ):
            for _ in reply.iter_bytes():
                pass
        verify_evidence(broken.value.evidence)
        client.wait(job, timeout=90)
    assert job.status == "failed"
    assert (job.failure["reason"], job.failure["exit_code"]) == ("nonzero_exit", 3)
    assert_nothing_left_behind(grid, docker_client)


def test_a_docker_streaming_job_that_never_becomes_healthy_fails_and_leaves_nothing(
    grid: LocalGrid, client_key: Path, docker_client: Any
) -> None:
    with Client(grid.facilitator_url, client_key) as client:
        job = client.create_job(streaming(env={"ECHO_NEVER_READY": "1"}, timing={"streaming_start": 3}))
        client.wait(job, timeout=90)
    assert job.status == "failed"
    assert (job.failure["stage"], job.failure["reason"]) == ("streaming_start", "streaming_not_ready")
    assert_nothing_left_behind(grid, docker_client)
