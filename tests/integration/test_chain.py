"""Batch jobs through the whole chain of real processes: SDK → facilitator → validator → miner → executor."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facilitator_sdk import AsyncClient, Client, Input, JobError, JobSpec, Output
from grid.local import LocalGrid
from protocol.streaming import verify_evidence
from tests.integration.conftest import find_process, kill, parent_of, start_grid


def py(code: str, **spec: object) -> JobSpec:
    return JobSpec(command=[sys.executable, "-c", code], **spec)


async def test_concurrent_jobs_each_end_with_their_own_outcome(grid: LocalGrid, client_key: Path) -> None:
    """Success, non-zero exit and a time limit run side by side; each ends as it should, with its reason."""
    async with AsyncClient(grid.facilitator_url, client_key) as client:
        ok = [await client.create_job(py(f"print('job {i}')")) for i in range(3)]
        bad = await client.create_job(py("import sys; print('oops', file=sys.stderr); sys.exit(3)"))
        slow = await client.create_job(py("import time; time.sleep(30)", timing={"execution": 1.0}))
        jobs = await asyncio.gather(*(job.wait(timeout=60) for job in [*ok, bad, slow]))

    for i, job in enumerate(jobs[:3]):
        assert job.status == "completed"
        assert job.result is not None and job.result.stdout == f"job {i}\n"
        statuses = [event["status"] for event in job.history]
        assert statuses == [
            "sent",
            "received",
            "accepted",
            "executor_ready",
            "volumes_ready",
            "execution_done",
            "completed",
        ]
    assert jobs[3].status == "failed"
    assert jobs[3].failure["reason"] == "nonzero_exit"
    assert jobs[3].failure["exit_code"] == 3
    assert "oops" in jobs[3].failure["stderr_tail"]
    assert jobs[4].status == "failed"
    assert jobs[4].failure["reason"] == "timeout"
    assert jobs[4].failure["stage"] == "execution"


def test_sync_client_run_pushes_every_status_and_returns_the_result(grid: LocalGrid, client_key: Path) -> None:
    seen: list[str] = []
    with Client(grid.facilitator_url, client_key) as client:
        job = client.run(
            py("import os; print(os.environ['GRID_JOB_ID'])"), timeout=60, on_status=lambda u: seen.append(u.status)
        )
        assert job.result is not None and job.result.stdout.strip() == job.job_id
        assert seen[-1] == "completed" and "executor_ready" in seen
        fetched = client.get_job(job.job_id)
        assert fetched.status == "completed" and fetched.result.stdout == job.result.stdout
        assert job.job_id in [listed.job_id for listed in client.list_jobs(status="completed")]
        with pytest.raises(JobError) as failure:
            client.run(py("raise SystemExit(7)"), timeout=60)
        assert failure.value.reason == "nonzero_exit" and failure.value.status == "failed"


async def test_cancel_stops_a_running_job_and_frees_its_executor(grid: LocalGrid, client_key: Path) -> None:
    async with AsyncClient(grid.facilitator_url, client_key) as client:
        marker = "GRID-CANCEL-ME-777"
        job = await client.create_job(py(f"import time; time.sleep(60)  # {marker}"))
        running = asyncio.Event()
        waiter = asyncio.create_task(
            job.wait(timeout=60, on_status=lambda u: running.set() if u.status == "volumes_ready" else None)
        )
        await asyncio.wait_for(running.wait(), 30)
        cancelled = await client.cancel_job(job.job_id)
        assert cancelled.status == "cancelled"
        done = await waiter
        assert done.status == "cancelled"
        # The job's process is killed at once, not left to finish its sleep …
        deadline = time.monotonic() + 5
        while find_process(marker) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert find_process(marker) is None, "a cancelled job must not keep running"
        # … and the executor slot serves the next job.
        after = await client.run(py("print('next')"), timeout=60)
        assert after.result.stdout == "next\n"


async def test_executor_killed_mid_job_ends_infra_failed(grid: LocalGrid, client_key: Path) -> None:
    marker = "GRID-KILL-ME-4242"
    async with AsyncClient(grid.facilitator_url, client_key) as client:
        job = await client.create_job(py(f"import time; time.sleep(60)  # {marker}", max_attempts=1))
        running = asyncio.Event()
        waiter = asyncio.create_task(
            job.wait(timeout=60, on_status=lambda u: running.set() if u.status == "volumes_ready" else None)
        )
        await asyncio.wait_for(running.wait(), 30)
        deadline = time.monotonic() + 10
        while (pid := find_process(marker)) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert pid is not None, "the job's process should be running"
        executor_pid = parent_of(pid)
        assert list((grid.home / "work").glob(f"job-{executor_pid}-*")), "the job's directory should exist"
        kill(executor_pid)
        done = await waiter
        assert done.status == "infra_failed"
        assert done.failure["reason"] == "executor_disconnected"
        assert done.failure["reported_by"] == "miner"
        # The job died with its executor (parent-death signal): nothing left running.
        deadline = time.monotonic() + 5
        while find_process(marker) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert find_process(marker) is None
        # … and its parent, the fork server, removed the job's directory.
        while list((grid.home / "work").glob(f"job-{executor_pid}-*")) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not list((grid.home / "work").glob(f"job-{executor_pid}-*"))


async def test_jobs_queued_while_the_validator_is_down_are_delivered_when_it_returns(tmp_path: Path) -> None:
    grid = start_grid(tmp_path / "grid")
    try:
        grid.stop_role("validator")
        async with AsyncClient(grid.facilitator_url, tmp_path / "client.key") as client:
            queued = [await client.create_job(py(f"print({i})")) for i in range(3)]
            await asyncio.sleep(0.5)
            assert [(await client.get_job(job.job_id)).status for job in queued] == ["sent"] * 3
            grid.start_role("validator")
            done = await asyncio.gather(*(job.wait(timeout=60) for job in queued))
        assert [job.status for job in done] == ["completed"] * 3
        assert [job.result.stdout for job in done] == ["0\n", "1\n", "2\n"]
    finally:
        grid.stop()


async def test_validator_killed_mid_job_resumes_it_as_a_new_attempt(tmp_path: Path) -> None:
    grid = start_grid(tmp_path / "grid")
    try:
        async with AsyncClient(grid.facilitator_url, tmp_path / "client.key") as client:
            job = await client.create_job(py("import time; time.sleep(1.5); print('survived')"))
            running = asyncio.Event()
            waiter = asyncio.create_task(
                job.wait(timeout=90, on_status=lambda u: running.set() if u.status == "volumes_ready" else None)
            )
            await asyncio.wait_for(running.wait(), 30)
            grid.stop_role("validator", sig=9)
            grid.start_role("validator")
            done = await waiter
        assert done.status == "completed"
        assert done.attempt == 2
        assert done.result.stdout == "survived\n"
        restarted = [e for e in done.history if e["status"] == "infra_failed"]
        assert restarted and restarted[0]["failure"]["reason"] == "validator_restarted"
        assert restarted[0]["detail"] == {"retrying": True}
    finally:
        grid.stop()


def test_grid_job_run_prints_stdout_and_exits_with_the_jobs_code(grid: LocalGrid, tmp_path: Path) -> None:
    env = {**os.environ, "GRID_HOME": str(tmp_path)}
    base = [sys.executable, "-m", "grid.cli", "job", "run", "--facilitator", grid.facilitator_url, "-q", "--"]
    ok = subprocess.run([*base, "echo", "hello", "grid"], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "hello grid\n"
    failing = subprocess.run(
        [*base, "sh", "-c", "echo partial; echo broken >&2; exit 4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failing.returncode == 4
    assert failing.stdout == "partial\n"
    assert "nonzero_exit" in failing.stderr and "broken" in failing.stderr
    missing = subprocess.run([*base, "no-such-command-xyz"], env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1
    assert "command_not_found" in missing.stderr


def test_idle_connections_stay_up(tmp_path: Path) -> None:
    """Nothing to do for longer than any internal timeout (the Redis layer's 5 s pop) drops no connection."""
    grid = start_grid(tmp_path / "grid")
    try:
        time.sleep(7)
        with Client(grid.facilitator_url, tmp_path / "client.key") as client:
            assert client.run(py("print('still here')"), timeout=30).result.stdout == "still here\n"
        for role in ("facilitator", "miner", "validator"):
            log = (grid.home / "logs" / f"{role}.log").read_text()
            assert "disconnected from" not in log, f"{role}:\n{log[-2000:]}"
            assert "Traceback" not in log, f"{role}:\n{log[-2000:]}"
    finally:
        grid.stop()


def test_process_jobs_read_store_objects_and_write_outputs_back(
    grid: LocalGrid, client_key: Path, tmp_path: Path
) -> None:
    """The embedded default moves data like the docker runtime: upload, object input, object output, download."""
    with Client(grid.facilitator_url, client_key) as client:
        ref = client.upload(b"3\n1\n2\n", filename="numbers.txt")
        code = (
            "import os; d, o = os.environ['GRID_INPUT_DIR'], os.environ['GRID_OUTPUT_DIR']; "
            "lines = sorted(open(d + '/numbers.txt').read().split()); "
            "open(o + '/sorted.txt', 'w').write(' '.join(lines)); print('sorted', len(lines))"
        )
        job = client.run(
            py(code, inputs=[Input.object("numbers.txt", ref)], outputs=[Output.object("sorted.txt")]), timeout=60
        )
        assert job.result.download("sorted.txt", tmp_path / "sorted.txt").read_text() == "1 2 3"
        assert job.result.download("stdout", tmp_path / "stdout").read_text() == "sorted 3\n"


STREAMING_APP = Path(__file__).resolve().parents[2] / "examples" / "streaming_echo" / "app.py"


def test_a_streaming_job_answers_signed_requests_directly_until_terminated(grid: LocalGrid, client_key: Path) -> None:
    """The whole streaming lifecycle on the process runtime: readiness vouched for by the miner,
    signed requests, verified buffered, streamed and websocket replies, termination, completed."""
    with Client(grid.facilitator_url, client_key) as client:
        job = client.create_job(
            JobSpec(command=[sys.executable, str(STREAMING_APP)], streaming=True, timing={"execution": 60})
        )
        endpoint = job.wait_for_streaming(timeout=60)
        assert endpoint.miner_hotkey == job.miner
        with job.stream_client() as stream:
            reply = stream.post("/echo", content=b"hello")
            assert (reply.status_code, reply.content) == (200, b"hello")
            with stream.stream("GET", "/tokens?n=5&delay=0.01") as tokens:
                words = b"".join(tokens.iter_bytes()).split()
            assert len(words) == 5 and tokens.evidence is not None
            with stream.websocket("/ws") as ws:
                ws.send("upper:grid")
                assert ws.recv() == "GRID"
            assert ws.evidence is not None
            verify_evidence(reply.evidence)
        job.terminate()
        client.wait(job, timeout=60)
    assert job.status == "completed", job.failure
    assert [e["status"] for e in job.history if e["attempt"] == 1][-3:] == [
        "streaming_ready",
        "execution_done",
        "completed",
    ]
