"""The operator's status endpoint (miner/status.py, ``GET /api/v1/status`` in miner/urls.py)."""

from __future__ import annotations

import time

import pytest
from django.test import AsyncClient

import miner.status
from miner.executors.pool import ExecutorPool
from miner.ports import PortPool
from miner.status import MinerStatus
from node.identity import own_keypair
from protocol.keys import Keypair
from protocol.messages import (
    ExecutorReady,
    JobCancel,
    JobFailed,
    JobFailure,
    JobFinished,
    JobReserved,
    JobResult,
    VolumesReady,
)
from protocol.requests import MAX_SKEW_S, sign_request
from protocol.spec import new_job_id
from protocol.status import FailureReason, Stage

from .conftest import VALIDATOR, Dial, FakeSpawner, settle
from .test_consumers import MANIFEST, accepted, initial, running_job

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("miner.urls"),
    pytest.mark.usefixtures("validators_allowed"),
]

PATH = "/api/v1/status"


@pytest.fixture(autouse=True)
def status(monkeypatch: pytest.MonkeyPatch) -> MinerStatus:
    """A fresh status record per test (the process keeps one)."""
    fresh = MinerStatus()
    monkeypatch.setattr(miner.status, "_status", fresh)
    return fresh


def signed(keypair: Keypair | None = None, *, now: float | None = None) -> dict[str, str]:
    return sign_request(keypair or own_keypair(), "GET", PATH, "", now=now)


async def test_the_miners_own_key_gets_validators_capacity_and_recent_jobs(
    async_client: AsyncClient, dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    pool.ports = PortPool(range(40000, 40004))
    validator, executor, done = await running_job(dial_validator, dial_executor, spawner)
    for report in [
        ExecutorReady(job_id=done),
        VolumesReady(job_id=done),
        JobFinished(job_id=done, result=JobResult(exit_code=0, stdout="hi\n")),
    ]:
        await executor.send(report)
        assert await validator.receive(skip=MANIFEST) == report
    failing = initial()
    await accepted(validator, failing)
    second = await dial_executor(await spawner.next_spawned())
    assert await second.receive() == JobReserved(initial=failing)
    failed = JobFailed(
        job_id=failing.job_id,
        failure=JobFailure(reason=FailureReason.NONZERO_EXIT, message="exit 1", stage=Stage.EXECUTION),
    )
    await second.send(failed)
    assert await validator.receive(skip=MANIFEST) == failed

    response = await async_client.get(PATH, headers=signed())
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["role"], body["hotkey"], body["receipts"]) == ("miner", own_keypair().hotkey, 0)
    assert [v["hotkey"] for v in body["validators"]] == [VALIDATOR.hotkey]
    assert body["validators"][0]["since"] <= body["at"]
    # Both executors still hold their jobs until they disconnect.
    assert body["executor_classes"] == {"cpu.small": {"total": 2, "free": 0, "busy": 2, "warm": 0, "warm_target": 1}}
    assert body["streaming_ports"] == {"used": 0, "total": 4}
    newest, oldest = body["recent_jobs"]
    assert {k: newest[k] for k in ("job_id", "status", "stage", "reason")} == {
        "job_id": failing.job_id,
        "status": "failed",
        "stage": "execution",
        "reason": "nonzero_exit",
    }
    assert {k: oldest[k] for k in ("job_id", "status", "validator", "executor_class", "stage")} == {
        "job_id": done,
        "status": "completed",
        "validator": VALIDATOR.hotkey,
        "executor_class": "cpu.small",
        "stage": None,
    }
    assert oldest["started"] <= oldest["ended"] <= body["at"]


async def test_a_cancelled_job_and_a_gone_validator_show(
    async_client: AsyncClient, dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await validator.send(JobCancel(job_id=job_id, reason="cancelled by client"))
    assert await executor.receive() == JobCancel(job_id=job_id, reason="cancelled by client")
    await validator.disconnect()
    await settle()
    body = (await async_client.get(PATH, headers=signed())).json()
    assert body["validators"] == []
    assert [(j["job_id"], j["status"], j["reason"]) for j in body["recent_jobs"]] == [
        (job_id, "cancelled", "cancelled by client")
    ]


async def test_recent_jobs_keep_the_last_twenty(status: MinerStatus) -> None:
    jobs = [new_job_id() for _ in range(25)]
    for job_id in jobs:
        status.job_started(job_id, VALIDATOR.hotkey, "cpu.small")
    assert list(status.jobs) == jobs[-20:]


async def test_a_report_after_the_end_does_not_change_it(status: MinerStatus) -> None:
    job = initial()
    status.job_started(job.job_id, VALIDATOR.hotkey, "cpu.small")
    status.job_cancelled(job.job_id, "cancelled by client")
    failure = JobFailure(reason=FailureReason.NONZERO_EXIT, message="killed", stage=Stage.EXECUTION)
    status.job_reported(JobFailed(job_id=job.job_id, failure=failure))
    assert (status.jobs[job.job_id].status, status.jobs[job.job_id].reason) == ("cancelled", "cancelled by client")


async def test_an_unsigned_request_is_401(async_client: AsyncClient) -> None:
    response = await async_client.get(PATH)
    assert response.status_code == 401
    assert response.json()["code"] == "missing_signature"


async def test_another_key_is_403(async_client: AsyncClient) -> None:
    response = await async_client.get(PATH, headers=signed(VALIDATOR))
    assert (response.status_code, response.json()) == (
        403,
        {"code": "forbidden", "message": "only the miner's own key may read its status", "errors": []},
    )


async def test_a_stale_request_is_401(async_client: AsyncClient) -> None:
    response = await async_client.get(PATH, headers=signed(now=time.time() - MAX_SKEW_S - 5))
    assert (response.status_code, response.json()["code"]) == (401, "stale_request")


async def test_a_replayed_request_is_401(async_client: AsyncClient, pool: ExecutorPool) -> None:
    headers = signed()
    assert (await async_client.get(PATH, headers=headers)).status_code == 200
    response = await async_client.get(PATH, headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, "replayed")


async def test_a_signature_for_another_path_is_401(async_client: AsyncClient) -> None:
    headers = sign_request(own_keypair(), "GET", "/api/v1/receipts", "")
    response = await async_client.get(PATH, headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, "bad_signature")


async def test_only_get_is_allowed(async_client: AsyncClient) -> None:
    response = await async_client.post(PATH, headers=signed())
    assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")
