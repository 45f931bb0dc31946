"""The miner's hop of the relayed messages (miner/consumers.py): calls from an executor up to its
job's validator, replies down to the executor of the reply's job attempt; neither touches the job."""

from __future__ import annotations

import pytest

from miner.executors.pool import ExecutorPool
from protocol.messages import Error, JobReserved, RelayCall, RelayError, RelayReply
from protocol.spec import new_job_id

from .conftest import OTHER_VALIDATOR, Dial, FakeSpawner
from .test_consumers import MANIFEST, accepted, connected_validator, initial, running_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("validators_allowed")]


def call(job_id: str, attempt: int = 1, call_id: str = "c-1") -> RelayCall:
    return RelayCall(job_id=job_id, attempt=attempt, call_id=call_id, kind="ping", body={"n": 1})


def reply(job_id: str, attempt: int = 1, call_id: str = "c-1") -> RelayReply:
    return RelayReply(job_id=job_id, attempt=attempt, call_id=call_id, ok=True, body={"n": 1})


async def test_a_call_from_the_executor_reaches_its_validator_only(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    other = await connected_validator(dial_validator, OTHER_VALIDATOR)
    await executor.send(call(job_id))
    assert await validator.receive(skip=MANIFEST) == call(job_id)
    await other.expect_nothing(skip=MANIFEST)
    await executor.expect_nothing()


@pytest.mark.parametrize("forged", ["job", "attempt"])
async def test_a_call_for_another_job_attempt_is_refused_back_to_the_executor(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, forged: str
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    message = call(new_job_id()) if forged == "job" else call(job_id, attempt=2)
    await executor.send(message)
    assert await executor.receive() == RelayReply.refuse(message, "unknown_job", "not your job attempt")
    await validator.expect_nothing(skip=MANIFEST)


async def test_a_call_while_the_validator_is_away_is_answered_unavailable(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await validator.communicator.disconnect()
    await executor.send(call(job_id))
    answer = await executor.receive()
    assert isinstance(answer, RelayReply) and answer.error == RelayError(
        code="unavailable", message="the job's validator is not connected"
    )


async def test_a_reply_reaches_the_executor_of_its_job_attempt(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, first, first_job = await running_job(dial_validator, dial_executor, spawner)
    second_job = initial()
    await accepted(validator, second_job)
    second = await dial_executor(await spawner.next_spawned())
    assert await second.receive() == JobReserved(initial=second_job)
    await validator.send(reply(second_job.job_id, call_id="c-2"))
    assert await second.receive() == reply(second_job.job_id, call_id="c-2")
    await validator.send(reply(first_job))
    assert await first.receive() == reply(first_job)
    await first.expect_nothing()
    await second.expect_nothing()


@pytest.mark.parametrize("case", ["other_attempt", "other_job", "other_validator"])
async def test_a_reply_for_no_job_attempt_of_the_validator_here_is_an_unknown_job_error(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, case: str
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    sender, target = validator, job_id
    if case == "other_attempt":
        message = reply(job_id, attempt=2)
    elif case == "other_job":
        target = new_job_id()
        message = reply(target)
    else:
        sender = await connected_validator(dial_validator, OTHER_VALIDATOR)
        message = reply(job_id)
    await sender.send(message)
    assert await sender.receive(skip=MANIFEST) == Error(
        code="unknown_job", message="no executor runs this job attempt here", ref=target
    )
    await executor.expect_nothing()
