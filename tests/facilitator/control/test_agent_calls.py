"""The agent's relayed calls, in process: a batch job's task ends, with its outputs, through ``relay.answer``.

Each bad end is refused with its code (a malformed call) or fails the task with why (an output it
may not write, a digest the store denies), and leaves no result completed, no object stored.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

import pytest
from django.utils import timezone

from facilitator import relay
from facilitator.control import dispatch, engine
from facilitator.control.models import ControlResult, ControlSession, ControlTask
from facilitator.control.results import upload_key
from facilitator.models import Job
from facilitator.storage import get_store
from protocol.armonik_api.protos import objects_pb2, result_status_pb2, session_status_pb2, task_status_pb2
from protocol.messages import RelayCall
from protocol.spec import INLINE_RESULT_BYTES, parse_spec

pytestmark = pytest.mark.django_db

R = result_status_pb2.ResultStatus
T = task_status_pb2.TaskStatus
VALIDATOR = "cd" * 32
OPTIONS = objects_pb2.TaskOptions(partition_id="cpu.small", options={"command": '["worker"]'})


def _result(session: ControlSession, name: str, data: bytes | None = None) -> ControlResult:
    result = ControlResult(
        id=str(uuid.uuid4()), session=session, name=name, status=R.RESULT_STATUS_CREATED, created_at=timezone.now()
    )
    if data is not None:
        key = upload_key(session.id, result.id)
        info = get_store().put(key, data)
        result.status, result.store_key = R.RESULT_STATUS_COMPLETED, key
        result.sha256, result.size = info.sha256, info.size
    result.save()
    return result


class Ran:
    """One task of a batch job, dispatched: what its executor would see, and its calls."""

    def __init__(self, payload: bytes = b"payload", outputs: int = 1, others: int = 0) -> None:
        self.session = ControlSession.objects.create(
            id=str(uuid.uuid4()),
            client_hotkey="ab" * 32,
            status=session_status_pb2.SESSION_STATUS_RUNNING,
            options=OPTIONS.SerializeToString(),
            created_at=timezone.now(),
        )
        self.payload = _result(self.session, "payload", payload)
        self.outputs = [_result(self.session, f"out{i}") for i in range(outputs)]
        (self.waiting_output,) = [_result(self.session, "downstream")]
        creation = engine.Creation(
            payload_id=self.payload.id, data_dependencies=[], expected_output_ids=[o.id for o in self.outputs],
            options=OPTIONS,
        )  # fmt: skip
        downstream = engine.Creation(
            payload_id=self.payload.id, data_dependencies=[self.outputs[0].id] if outputs else [],
            expected_output_ids=[self.waiting_output.id], options=OPTIONS,
        )  # fmt: skip
        (self.task,) = engine.submit(self.session, [creation])
        (self.downstream,) = engine.submit(self.session, [downstream])
        self.others = []  # more tasks of the same batch job, one output each: (task, output)
        for i in range(others):
            output = _result(self.session, f"other{i}")
            other = engine.Creation(
                payload_id=self.payload.id, data_dependencies=[], expected_output_ids=[output.id], options=OPTIONS
            )
            self.others += [(engine.submit(self.session, [other])[0], output)]
        assert dispatch.dispatch_queued(send=False) >= 1
        self.task.refresh_from_db()
        Job.objects.filter(id=self.task.job_id).update(validator_hotkey=VALIDATOR)
        self.job = Job.objects.get(id=self.task.job_id)
        assert all(ControlTask.objects.get(id=t.id).job_id == self.task.job_id for t, _ in self.others)

    def call(self, kind: str, **body: Any) -> Any:
        return relay.answer(
            VALIDATOR,
            RelayCall(job_id=str(self.job.id), attempt=1, call_id=uuid.uuid4().hex, kind=kind, body=body),
        )

    def done(self, outputs: Any, **more: Any) -> Any:
        """The task's end, completed with ``outputs``, alone in its call."""
        return self.call(
            "control.done", ends=[{"task_id": self.task.id, "status": "completed", "outputs": outputs, **more}]
        )

    def status(self, task_id: str | None = None) -> tuple[int, str]:
        task = ControlTask.objects.get(id=task_id or self.task.id)
        return task.status, task.status_message

    def stored_keys(self) -> list[str]:
        """The objects under the session's outputs' keys (the test store is the local backend)."""
        where = get_store().path(f"control/{self.session.id}/x").parent
        return [str(p) for p in where.rglob("*") if p.is_file() and self.payload.id not in str(p)]


def inline(result: ControlResult, data: bytes) -> dict[str, Any]:
    sha256 = hashlib.sha256(data).hexdigest()
    return {"result_id": result.id, "sha256": sha256, "size": len(data), "data_b64": base64.b64encode(data).decode()}


def test_the_batch_carries_its_small_inputs_so_the_task_needs_no_call_to_fetch_them() -> None:
    ran = Ran(payload=b"small payload")
    batch = parse_spec(ran.job.spec).tasks
    assert batch is not None
    carried = batch.data[ran.payload.id]
    assert base64.b64decode(carried.data_b64) == b"small payload" and carried.sha256 == ran.payload.sha256


def test_an_input_over_the_inline_size_is_not_carried() -> None:
    ran = Ran(payload=b"x" * (INLINE_RESULT_BYTES + 1))
    batch = parse_spec(ran.job.spec).tasks
    assert batch is not None and ran.payload.id not in batch.data


def test_a_completed_end_completes_its_inline_outputs_and_wakes_what_waits_on_them() -> None:
    ran = Ran()
    reply = ran.done([inline(ran.outputs[0], b"the output")])
    assert reply.ok, reply.error
    assert ran.status()[0] == T.TASK_STATUS_COMPLETED
    output = ControlResult.objects.get(id=ran.outputs[0].id)
    assert output.status == R.RESULT_STATUS_COMPLETED and get_store().read(output.store_key) == b"the output"
    assert output.sha256 == hashlib.sha256(b"the output").hexdigest() and output.size == 10
    assert len(ran.stored_keys()) == 1
    downstream = ControlTask.objects.get(id=ran.downstream.id)
    assert downstream.status in (T.TASK_STATUS_SUBMITTED, T.TASK_STATUS_DISPATCHED)


def test_an_output_put_through_a_url_completes_by_its_key() -> None:
    ran = Ran()
    key = upload_key(ran.session.id, ran.outputs[0].id)
    data = b"y" * (INLINE_RESULT_BYTES + 10)
    get_store().put(key, data)
    sha256 = hashlib.sha256(data).hexdigest()
    reply = ran.done([{"result_id": ran.outputs[0].id, "sha256": sha256, "size": len(data), "key": key}])
    assert reply.ok, reply.error
    assert ControlResult.objects.get(id=ran.outputs[0].id).store_key == key


@pytest.mark.parametrize(
    ("outputs", "code"),
    [
        ("not a list", "bad_call"),
        (["not an object"], "bad_call"),
        ([{"result_id": "r", "sha256": "0" * 64, "size": -1, "data_b64": ""}], "bad_call"),
        ([{"result_id": "r", "sha256": "0" * 64, "size": 1, "data_b64": "not base64!"}], "bad_call"),
        ([{"result_id": "r", "sha256": "0" * 64, "size": 1}], "bad_call"),  # neither data nor key
        ([{"sha256": "0" * 64, "size": 1, "data_b64": ""}], "bad_call"),  # no result id
    ],
)
def test_a_malformed_end_is_refused_and_changes_nothing(outputs: Any, code: str) -> None:
    ran = Ran()
    reply = ran.done(outputs)
    assert not reply.ok and reply.error.code == code
    assert ran.status()[0] == T.TASK_STATUS_DISPATCHED
    assert ControlResult.objects.get(id=ran.outputs[0].id).status == R.RESULT_STATUS_CREATED


def test_inline_data_over_the_limit_is_refused() -> None:
    ran = Ran()
    reply = ran.done([inline(ran.outputs[0], b"z" * (INLINE_RESULT_BYTES + 1))])
    assert not reply.ok and reply.error.code == "bad_call" and "control.put" in reply.error.message
    assert ran.stored_keys() == []


def test_a_digest_the_data_does_not_have_fails_the_task_and_leaves_nothing_stored() -> None:
    ran = Ran()
    wrong = {**inline(ran.outputs[0], b"the output"), "sha256": "0" * 64}
    assert ran.done([wrong]).ok  # the call is answered: the task's end is an error
    status, message = ran.status()
    assert status == T.TASK_STATUS_ERROR and "the store holds 10 bytes of sha256" in message
    assert ControlResult.objects.get(id=ran.outputs[0].id).status == R.RESULT_STATUS_ABORTED
    assert ran.stored_keys() == []
    assert ControlTask.objects.get(id=ran.downstream.id).status == T.TASK_STATUS_ERROR  # its input aborted


def test_an_output_that_is_not_the_tasks_fails_it_and_completes_none_of_its_outputs() -> None:
    ran = Ran(outputs=2)
    stranger = _result(ran.session, "someone else's")
    reply = ran.done([inline(ran.outputs[0], b"mine"), inline(ran.outputs[1], b"mine too"), inline(stranger, b"no")])
    assert reply.ok
    status, message = ran.status()
    assert status == T.TASK_STATUS_ERROR and f"result {stranger.id} is neither an output" in message
    assert {r.status for r in ControlResult.objects.filter(id__in=[o.id for o in ran.outputs])} == {
        R.RESULT_STATUS_ABORTED
    }
    assert ControlResult.objects.get(id=stranger.id).status == R.RESULT_STATUS_CREATED
    assert ran.stored_keys() == []


def test_a_key_outside_the_results_own_place_fails_the_task() -> None:
    ran = Ran()
    key = upload_key(ran.session.id, ran.payload.id)  # another result's place
    get_store().put(key, b"data")
    entry = {"result_id": ran.outputs[0].id, "sha256": hashlib.sha256(b"data").hexdigest(), "size": 4, "key": key}
    assert ran.done([entry]).ok
    status, message = ran.status()
    assert status == T.TASK_STATUS_ERROR and "is not where result" in message


def test_an_expected_output_left_unwritten_fails_the_task() -> None:
    ran = Ran(outputs=2)
    assert ran.done([inline(ran.outputs[0], b"one of two")]).ok
    status, message = ran.status()
    assert status == T.TASK_STATUS_ERROR and f"without writing its expected output {ran.outputs[1].id}" in message
    assert ControlResult.objects.get(id=ran.outputs[0].id).status == R.RESULT_STATUS_ABORTED


def test_an_error_end_aborts_its_outputs_and_the_results_it_created() -> None:
    ran = Ran()
    made = ran.call("control.create", task_id=ran.task.id, names=["scratch"])
    assert made.ok
    (scratch,) = made.body["result_ids"]
    end = {"task_id": ran.task.id, "status": "error", "message": "bad input", "outputs": ["ignored"]}
    reply = ran.call("control.done", ends=[end])
    assert reply.ok
    assert ran.status() == (T.TASK_STATUS_ERROR, "bad input")
    assert ControlResult.objects.get(id=scratch).status == R.RESULT_STATUS_ABORTED
    assert ControlResult.objects.get(id=ran.outputs[0].id).status == R.RESULT_STATUS_ABORTED


def test_a_second_end_of_the_same_task_is_refused() -> None:
    ran = Ran()
    assert ran.done([inline(ran.outputs[0], b"once")]).ok
    again = ran.done([inline(ran.outputs[0], b"twice")])
    assert again.ok and again.body["refused"][ran.task.id].startswith("task_over")
    assert get_store().read(ControlResult.objects.get(id=ran.outputs[0].id).store_key) == b"once"


def test_the_ends_of_one_call_are_taken_each_on_its_own() -> None:
    ran = Ran(others=2)
    (second, second_output), (third, third_output) = ran.others
    ends = [
        {"task_id": ran.task.id, "status": "completed", "outputs": [inline(ran.outputs[0], b"first")]},
        {"task_id": second.id, "status": "completed", "outputs": [{**inline(second_output, b"x"), "sha256": "0" * 64}]},
        {"task_id": third.id, "status": "completed", "outputs": [inline(third_output, b"third")]},
        {"task_id": third.id, "status": "error", "message": "a second end of the same task"},
        {"task_id": str(uuid.uuid4()), "status": "completed", "outputs": []},
    ]
    reply = ran.call("control.done", ends=ends)
    assert reply.ok, reply.error
    assert set(reply.body["refused"]) == {third.id, ends[-1]["task_id"]}
    assert ran.status()[0] == ran.status(third.id)[0] == T.TASK_STATUS_COMPLETED
    assert ran.status(second.id)[0] == T.TASK_STATUS_ERROR
    outputs = {
        r.id: r for r in ControlResult.objects.filter(id__in=[ran.outputs[0].id, second_output.id, third_output.id])
    }
    assert get_store().read(outputs[third_output.id].store_key) == b"third"
    assert outputs[second_output.id].status == R.RESULT_STATUS_ABORTED and outputs[second_output.id].store_key == ""
    assert ControlTask.objects.get(id=ran.downstream.id).status in (T.TASK_STATUS_SUBMITTED, T.TASK_STATUS_DISPATCHED)


def test_two_tasks_of_one_call_cannot_both_write_one_result() -> None:
    ran = Ran(others=1)
    ((other, _),) = ran.others
    ends = [
        {"task_id": ran.task.id, "status": "completed", "outputs": [inline(ran.outputs[0], b"mine")]},
        {"task_id": other.id, "status": "completed", "outputs": [inline(ran.outputs[0], b"also mine?")]},
    ]
    assert ran.call("control.done", ends=ends).ok
    assert ran.status()[0] == T.TASK_STATUS_COMPLETED
    status, message = ran.status(other.id)
    assert status == T.TASK_STATUS_ERROR and "twice" in message
    assert get_store().read(ControlResult.objects.get(id=ran.outputs[0].id).store_key) == b"mine"


@pytest.mark.parametrize(
    "ends",
    [None, [], "ends", ["an end"], [{"task_id": "t", "status": "finished"}], [{"status": "error"}]],
)
def test_a_malformed_list_of_ends_is_refused_whole(ends: Any) -> None:
    ran = Ran()
    reply = ran.call("control.done", ends=ends)
    assert not reply.ok and reply.error.code == "bad_call"
    assert ran.status()[0] == T.TASK_STATUS_DISPATCHED
