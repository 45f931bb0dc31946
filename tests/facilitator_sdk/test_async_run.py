"""``AsyncClient.run`` creates its job on the event stream (``job.create``), against a real grid.

The grid's client frame rate is low here, so that some creates are dropped by the facilitator's
frame gate: the client sends them again and no job is lost or run twice.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from facilitator_sdk import AsyncClient, Input, InvalidRequestError, JobError, JobSpec
from grid.local import LocalGrid
from protocol.keys import Keypair
from tests.integration.conftest import running_grid


def py(code: str, **spec: object) -> JobSpec:
    return JobSpec(command=[sys.executable, "-c", code], **spec)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    with running_grid(
        tmp_path_factory.mktemp("grid"), GRID_WS_CLIENT_FRAME_RATE="10", GRID_WS_CLIENT_FRAME_BURST="10"
    ) as grid:
        yield grid


async def test_run_creates_the_signed_job_on_the_stream(grid: LocalGrid) -> None:
    async with AsyncClient(grid.facilitator_url, Keypair.generate()) as client:
        job = await client.run(py("print(6 * 7)"), timeout=30)
        assert (job.status, job.result.stdout) == ("completed", "42\n")
        assert job.history[0]["status"] == "sent"
        stored = await client.get_job(job.job_id)  # the facilitator holds the job as it was signed
        assert stored.status == "completed" and stored.spec == job.spec
        assert [listed.job_id for listed in await client.list_jobs()] == [job.job_id]
        with pytest.raises(JobError) as failed:
            await client.run(py("raise SystemExit(4)"), timeout=30)
        assert failed.value.job.failure["exit_code"] == 4


async def test_a_refusal_of_the_facilitator_is_the_typed_error_a_request_gets(grid: LocalGrid) -> None:
    async with AsyncClient(grid.facilitator_url, Keypair.generate()) as client:
        missing = Input.object("data", "uploads/nobody/0/missing")
        with pytest.raises(InvalidRequestError) as refused:
            await client.run(JobSpec(command=["true"], inputs=[missing]), timeout=30)
        assert (refused.value.status, refused.value.code) == (400, "invalid_input")
        assert refused.value.errors and refused.value.errors[0]["field"] == "inputs.0.key"
        assert await client.list_jobs() == []


async def test_creates_dropped_by_the_frame_gate_are_sent_again(grid: LocalGrid) -> None:
    async with AsyncClient(grid.facilitator_url, Keypair.generate()) as client:
        # 15 creates at once against 10 frames a second, bursts of 10: about 5 are dropped.
        jobs = await asyncio.gather(*(client.run(py(f"print({i})"), timeout=60) for i in range(15)))
        assert sorted(job.result.stdout for job in jobs) == sorted(f"{i}\n" for i in range(15))
        listed = await client.list_jobs()
        assert sorted(job.job_id for job in listed) == sorted(job.job_id for job in jobs)  # none twice
        assert all(job.attempt == 1 for job in listed)
        assert client._recovery is not None  # some were dropped indeed: this test tested the resend
