"""``Client`` and ``AsyncClient`` against a real local grid: facilitator, validator, miner, executors.

One grid for the module (tests/integration/conftest.py's ``start_grid``); each test its own client
key, so ``list_jobs`` sees only that test's jobs. Jobs are tiny Python one-liners; the slow one is
cancelled. Errors come from the real facilitator and arrive as the SDK's typed errors.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from facilitator_sdk import (
    AsyncClient,
    AsyncJob,
    AuthenticationError,
    Client,
    ConflictError,
    ConnectionError,
    InvalidRequestError,
    Job,
    JobError,
    JobSpec,
    JobTimeoutError,
    NotFoundError,
    SpecError,
)
from grid.local import LocalGrid
from protocol.keys import Keypair
from protocol.requests import HEADER_SIGNATURE
from tests.integration.conftest import start_grid

UNKNOWN_JOB = "00000000-0000-4000-8000-000000000000"


def py(code: str, **spec: object) -> JobSpec:
    return JobSpec(command=[sys.executable, "-c", code], **spec)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    grid = start_grid(tmp_path_factory.mktemp("grid"))
    try:
        yield grid
    finally:
        grid.stop()


@pytest.fixture
def key() -> Keypair:
    return Keypair.generate()


def test_sync_submit_get_wait_list(grid: LocalGrid, key: Keypair) -> None:
    seen: list[str] = []
    with Client(grid.facilitator_url, key) as client:
        job = client.create_job(py("print('hi')"))
        assert isinstance(job, Job) and job.status == "sent" and not job.done

        got = client.get_job(job.job_id)
        assert got.job_id == job.job_id and got.spec["command"][-1] == "print('hi')"

        done = client.wait(job, timeout=30, on_status=lambda update: seen.append(update.status))
        assert done is job and done.done and done.status == "completed"
        assert done.result is not None and done.result.stdout == "hi\n"
        assert seen[-1] == "completed" and "accepted" in seen

        again = client.get_job(job.job_id)  # a fresh read agrees with what the stream said
        assert again.status == "completed" and again.result.stdout == "hi\n"
        assert [event["status"] for event in again.history][-1] == "completed"

        failed = client.create_job(py("raise SystemExit(4)"))
        assert failed.wait(timeout=30).status == "failed"
        assert failed.failure["reason"] == "nonzero_exit" and failed.failure["exit_code"] == 4

        listed = client.list_jobs()
        assert [item.job_id for item in listed] == [failed.job_id, job.job_id]  # newest first
        assert [item.job_id for item in client.list_jobs(status="completed")] == [job.job_id]
        assert [item.job_id for item in client.list_jobs(limit=1, offset=1)] == [job.job_id]
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        assert [item.job_id for item in client.list_jobs(since=hour_ago)] == [failed.job_id, job.job_id]
        assert client.list_jobs(since=time.time() + 3600) == []  # Unix seconds too

    with Client(grid.facilitator_url, Keypair.generate()) as stranger:
        assert stranger.list_jobs() == []  # jobs are the submitting client's alone
        with pytest.raises(NotFoundError):
            stranger.get_job(job.job_id)


def test_sync_run_returns_a_completed_job_or_raises_job_error(grid: LocalGrid, key: Keypair) -> None:
    with Client(grid.facilitator_url, key) as client:
        assert client.run(py("print(6 * 7)"), timeout=30).result.stdout == "42\n"
        with pytest.raises(JobError) as caught:
            client.run(py("raise SystemExit(3)"), timeout=30)
    assert caught.value.status == "failed" and caught.value.reason == "nonzero_exit"
    assert caught.value.job.failure["exit_code"] == 3


def test_sync_cancel_and_wait_timeout(grid: LocalGrid, key: Keypair) -> None:
    with Client(grid.facilitator_url, key) as client:
        job = client.create_job(py("import time; time.sleep(60)"))
        started = time.monotonic()
        with pytest.raises(JobTimeoutError) as timed_out:
            client.wait(job, timeout=0.5)
        assert 0.4 < time.monotonic() - started < 5
        assert timed_out.value.job is job

        cancelled = job.cancel()
        assert cancelled.status == "cancelled"
        assert client.wait(job, timeout=30).status == "cancelled"
        with pytest.raises(ConflictError) as caught:
            client.cancel_job(job.job_id)  # an ended job stays ended
        assert caught.value.status == 409 and caught.value.code == "already_ended"


def test_sync_errors_are_typed(grid: LocalGrid, key: Keypair) -> None:
    with Client(grid.facilitator_url, key) as client:
        with pytest.raises(SpecError):
            client.create_job({"command": []})  # refused locally, before any request
        assert client.list_jobs() == []

        with pytest.raises(NotFoundError) as missing:
            client.get_job(UNKNOWN_JOB)
        assert missing.value.status == 404 and missing.value.code == "not_found"
        with pytest.raises(NotFoundError):
            client.cancel_job(UNKNOWN_JOB)
        with pytest.raises(NotFoundError):
            client.wait(Job(client, {"job_id": UNKNOWN_JOB, "status": "sent"}), timeout=10)

        with pytest.raises(InvalidRequestError) as bad_id:
            client.create_job(py("print(1)"), job_id="not a job id")
        assert bad_id.value.status == 400

        spec = py("import time; time.sleep(60)")  # still running when it is cancelled below
        first = client.create_job(spec)
        assert client.create_job(spec, job_id=first.job_id).job_id == first.job_id  # a repeat is fine
        with pytest.raises(ConflictError):
            client.create_job(py("print('other')"), job_id=first.job_id)  # the same id, another job
        client.cancel_job(first.job_id)

        with pytest.raises(InvalidRequestError):
            client.list_jobs(limit=-1)


class TamperedSignature(httpx.HTTPTransport):
    """A real transport that flips one digit of each request's signature after the SDK signed it."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        signature = request.headers[HEADER_SIGNATURE]
        request.headers[HEADER_SIGNATURE] = ("0" if signature[0] != "0" else "1") + signature[1:]
        return super().handle_request(request)


def test_a_bad_signature_is_an_authentication_error(grid: LocalGrid, key: Keypair) -> None:
    with Client(grid.facilitator_url, key, transport=TamperedSignature()) as client:
        with pytest.raises(AuthenticationError) as caught:
            client.list_jobs()
        with pytest.raises(AuthenticationError):
            client.create_job(py("print(1)"))
    assert caught.value.status == 401
    with Client(grid.facilitator_url, key) as honest:
        assert honest.list_jobs() == []  # nothing was created under the tampered signature


def test_an_unreachable_facilitator_is_a_connection_error(key: Keypair) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", key) as client, pytest.raises(ConnectionError):
        client.get_job(UNKNOWN_JOB)


async def test_async_submit_get_wait_list_cancel(grid: LocalGrid, key: Keypair) -> None:
    async with AsyncClient(grid.facilitator_url, key) as client:
        jobs = [await client.create_job(py(f"print({i})")) for i in range(3)]
        assert all(isinstance(job, AsyncJob) for job in jobs)
        slow = await client.create_job(py("import time; time.sleep(60)"))

        # One event stream serves every job waited on at once.
        done = await asyncio.gather(*(client.wait(job, timeout=30) for job in jobs))
        assert [job.status for job in done] == ["completed"] * 3
        assert [job.result.stdout for job in done] == ["0\n", "1\n", "2\n"]

        got = await client.get_job(jobs[1].job_id)
        assert got.status == "completed" and got.result.stdout == "1\n"

        with pytest.raises(JobTimeoutError):
            await slow.wait(timeout=0.3)
        cancelled = await client.cancel_job(slow.job_id)
        assert cancelled.status == "cancelled"
        assert (await slow.wait(timeout=30)).status == "cancelled"

        listed = [job.job_id for job in await client.list_jobs()]
        assert listed == [slow.job_id, *reversed([job.job_id for job in jobs])]
        assert [job.job_id for job in await client.list_jobs(status="cancelled")] == [slow.job_id]

        assert (await client.run(py("print('ran')"), timeout=30)).result.stdout == "ran\n"
        with pytest.raises(JobError):
            await client.run(py("raise SystemExit(2)"), timeout=30)


async def test_async_errors_are_typed(grid: LocalGrid, key: Keypair) -> None:
    async with AsyncClient(grid.facilitator_url, key) as client:
        with pytest.raises(SpecError):
            await client.create_job({"command": []})
        with pytest.raises(NotFoundError):
            await client.get_job(UNKNOWN_JOB)
        with pytest.raises(NotFoundError):
            await client.cancel_job(UNKNOWN_JOB)
        with pytest.raises(NotFoundError):
            await client.wait(AsyncJob(client, {"job_id": UNKNOWN_JOB, "status": "sent"}), timeout=10)
        with pytest.raises(InvalidRequestError):
            await client.create_job(py("print(1)"), job_id="not a job id")
        with pytest.raises(InvalidRequestError):
            await client.list_jobs(limit=-1)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with AsyncClient(f"http://127.0.0.1:{port}", key) as unreachable:
        with pytest.raises(ConnectionError):
            await unreachable.get_job(UNKNOWN_JOB)


def test_clients_accept_a_key_file(grid: LocalGrid, tmp_path: Path) -> None:
    path = tmp_path / "client.key"
    with Client(grid.facilitator_url, path) as client:  # created on first use
        job = client.create_job(py("import time; time.sleep(60)"))  # running when cancelled below
    assert path.exists()
    with Client(grid.facilitator_url, path) as again:  # the same key: the same client's jobs
        assert [item.job_id for item in again.list_jobs()] == [job.job_id]
        again.cancel_job(job.job_id)
