"""The facilitator's end of the relayed calls (facilitator/relay.py) over a real ``ws/validator/`` connection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from facilitator import relay
from facilitator.models import Job
from protocol.messages import JobStatusUpdate, RelayCall, RelayError, RelayReply
from protocol.status import JobStatus

from .conftest import OTHER_VALIDATOR, VALIDATOR, Dial, acreate_job
from .test_consumers_validator import delivered

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("validators_allowed")]


def call(job_id: str, kind: str = "ping", attempt: int = 1, **body: Any) -> RelayCall:
    return RelayCall(job_id=job_id, attempt=attempt, call_id="c-1", kind=kind, body=body)


async def reply_to(validator: Any, message: RelayCall) -> RelayReply:
    await validator.send(message)
    while True:
        answer = await validator.receive()
        if isinstance(answer, RelayReply):
            return answer
        assert not isinstance(answer, JobStatusUpdate), answer


@pytest.fixture
def refusing_kind() -> Iterator[None]:
    @relay.register("test.refuse")
    def refuse(job: Job, message: RelayCall) -> dict[str, Any]:
        raise relay.RelayRefused("nope", f"refused for {job.id}")

    yield
    relay.HANDLERS.pop("test.refuse")


async def test_ping_answers_its_body_for_a_job_assigned_to_the_validator(dial_validator: Dial) -> None:
    job = await acreate_job()
    validator = await dial_validator(VALIDATOR)
    await delivered(validator, str(job.id))
    answer = await reply_to(validator, call(str(job.id), n=[1, 2]))
    assert answer == RelayReply(job_id=str(job.id), attempt=1, call_id="c-1", ok=True, body={"n": [1, 2]})


async def test_an_unknown_kind_is_answered_unknown_kind(dial_validator: Dial) -> None:
    job = await acreate_job()
    validator = await dial_validator(VALIDATOR)
    await delivered(validator, str(job.id))
    answer = await reply_to(validator, call(str(job.id), kind="no.such"))
    assert (answer.ok, answer.error) == (False, RelayError(code="unknown_kind", message="no handler for 'no.such'"))


async def test_a_handler_refusing_answers_its_code(dial_validator: Dial, refusing_kind: None) -> None:
    job = await acreate_job()
    validator = await dial_validator(VALIDATOR)
    await delivered(validator, str(job.id))
    answer = await reply_to(validator, call(str(job.id), kind="test.refuse"))
    assert (answer.ok, answer.error) == (False, RelayError(code="nope", message=f"refused for {job.id}"))


@pytest.mark.parametrize("case", ["other_validator", "earlier_attempt", "ended", "not_a_job"])
async def test_a_call_for_a_job_attempt_not_under_way_with_that_validator_is_refused(
    dial_validator: Dial, case: str
) -> None:
    job = await acreate_job()
    validator = await dial_validator(VALIDATOR)
    await delivered(validator, str(job.id))
    job_id, attempt, caller = str(job.id), 1, validator
    if case == "other_validator":
        caller = await dial_validator(OTHER_VALIDATOR)
    elif case == "earlier_attempt":
        await Job.objects.filter(id=job.id).aupdate(attempt=2)
    elif case == "ended":
        await Job.objects.filter(id=job.id).aupdate(status=JobStatus.COMPLETED)
    else:
        job_id = "not-a-uuid"
    answer = await reply_to(caller, call(job_id, attempt=attempt))
    assert not answer.ok and answer.error is not None and answer.error.code == "unknown_job"
    assert (answer.job_id, answer.call_id) == (job_id, "c-1")


async def test_a_later_attempt_than_the_facilitator_knows_is_answered(dial_validator: Dial) -> None:
    """A new attempt's statuses may still be on their way when its first call arrives."""
    job = await acreate_job()
    validator = await dial_validator(VALIDATOR)
    await delivered(validator, str(job.id))
    answer = await reply_to(validator, call(str(job.id), attempt=3))
    assert answer.ok and answer.attempt == 3
