"""The executor runs a client's task only with the client's signed submission asking for exactly it."""

from __future__ import annotations

import base64

import pytest

from executor.taskgraph.proof import SUBMIT_TASKS, refusal
from protocol.armonik_api.protos import tasks_pb2
from protocol.keys import Keypair
from protocol.signed_calls import call_metadata
from protocol.spec import SubmissionProof, TaskAssignment, TaskBatch

CLIENT = Keypair.generate()
Creation = tasks_pb2.SubmitTasksRequest.TaskCreation


def _signed(keypair: Keypair, request: tasks_pb2.SubmitTasksRequest) -> SubmissionProof:
    return SubmissionProof(
        signature=dict(call_metadata(keypair, SUBMIT_TASKS, request)),
        body_b64=base64.b64encode(request.SerializeToString(deterministic=True)).decode(),
    )


REQUEST = tasks_pb2.SubmitTasksRequest(
    session_id="session-1",
    task_creations=[
        Creation(payload_id="p0", expected_output_keys=["o0"]),
        Creation(payload_id="p1", data_dependencies=["o0"], expected_output_keys=["o1"]),
    ],
)
TASK = TaskAssignment(
    task_id="t1", payload_id="p1", data_dependencies=["o0"], expected_output_ids=["o1"], submission="1", creation=1
)


def _batch(task: TaskAssignment = TASK, proof: SubmissionProof | None = None, **fields: object) -> TaskBatch:
    proofs = {"1": proof or _signed(CLIENT, REQUEST)}
    return TaskBatch(
        **{"session_id": "session-1", "client_hotkey": CLIENT.hotkey, "tasks": [task], "submissions": proofs, **fields}
    )


def test_a_task_its_client_signed_for_may_run() -> None:
    assert refusal(_batch(), TASK) is None


def test_a_child_task_needs_no_client_signature_only_its_parent() -> None:
    child = TaskAssignment(task_id="c", payload_id="p", expected_output_ids=["o"], created_by="t1")
    assert refusal(_batch(child), child) is None


@pytest.mark.parametrize(
    "task, batch_fields, proof, says",
    [
        (TASK.model_copy(update={"payload_id": "other"}), {}, None, "not what its submission asks for"),
        (TASK.model_copy(update={"data_dependencies": []}), {}, None, "not what its submission asks for"),
        (TASK.model_copy(update={"expected_output_ids": ["elsewhere"]}), {}, None, "not what its submission asks for"),
        (TASK.model_copy(update={"creation": 5}), {}, None, "no entry 5"),
        (TASK.model_copy(update={"submission": None}), {}, None, "no proof that the client asked for it"),
        (TASK.model_copy(update={"submission": "9"}), {}, None, "not in the batch"),
        (TASK, {"session_id": "session-2"}, None, "to another session"),
        (TASK, {"client_hotkey": Keypair.generate().hotkey}, None, "not by the session's client"),
        (TASK, {}, _signed(Keypair.generate(), REQUEST), "not by the session's client"),
        (
            TASK,
            {},
            SubmissionProof(
                signature=dict(call_metadata(CLIENT, SUBMIT_TASKS, REQUEST)),
                body_b64=base64.b64encode(REQUEST.SerializeToString() + b"\x1a\x02\x1a\x00").decode(),  # one more task
            ),
            "signature does not hold",
        ),
        (
            TASK,
            {},
            SubmissionProof(signature={}, body_b64=_signed(CLIENT, REQUEST).body_b64),
            "signature does not hold",
        ),
        (
            TASK,
            {},
            SubmissionProof(signature=dict(call_metadata(CLIENT, SUBMIT_TASKS, REQUEST)), body_b64="!!"),
            "cannot be read",
        ),
    ],
)
def test_a_task_without_a_proof_that_holds_is_refused(task, batch_fields, proof, says: str) -> None:
    reason = refusal(_batch(task, proof, **batch_fields), task)
    assert reason is not None and says in reason
