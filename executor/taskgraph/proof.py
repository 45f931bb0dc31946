"""What proves, to the executor, that a task of a batch job was asked for (docs/control-plane.md, "Trust chain").

A client's task comes with the client's own ``SubmitTasks`` call, as it signed it: the executor
checks that signature (by the batch's ``client_hotkey``, the session's client) over the request's
bytes, and that the request's entry ``creation`` asks for exactly this task: the same payload, the
same data dependencies, the same expected outputs, in the batch's session. A facilitator, a
validator or a miner cannot make a client's task up, nor change what it reads or writes.

A child task (``created_by``: its parent) has no client signature: its proof is the facilitator's
signature over the batch job, which names it, checked with the job's (driver._check).
"""

from __future__ import annotations

import base64
import binascii

from protocol.armonik_api.protos import tasks_pb2
from protocol.errors import RequestAuthError
from protocol.signed_calls import verify_call
from protocol.spec import TaskAssignment, TaskBatch

__all__ = ["SUBMIT_TASKS", "refusal"]

SUBMIT_TASKS = "/armonik.api.grpc.v1.tasks.Tasks/SubmitTasks"


def refusal(batch: TaskBatch, task: TaskAssignment) -> str | None:
    """Why ``task`` may not run (no proof, or one that does not hold); ``None`` when it may."""
    if task.submission is None:
        return None if task.created_by else "no proof that the client asked for it (its signed submission)"
    proof = batch.submissions.get(task.submission)
    if proof is None:
        return f"its submission {task.submission} is not in the batch"
    try:
        body = base64.b64decode(proof.body_b64, validate=True)
        request = tasks_pb2.SubmitTasksRequest.FromString(body)
    except (binascii.Error, ValueError) as exc:
        return f"its submission cannot be read: {exc}"
    timestamp = proof.signature.get("x-grid-timestamp", "")
    try:
        signed = verify_call(
            list(proof.signature.items()), SUBMIT_TASKS, request, now=float(timestamp) if timestamp else None
        )
    except (RequestAuthError, ValueError) as exc:
        return f"its submission's signature does not hold: {getattr(exc, 'message', exc)}"
    if signed.hotkey != batch.client_hotkey:
        return f"its submission is signed by {signed.hotkey[:12]}…, not by the session's client"
    if request.session_id != batch.session_id:
        return "its submission is to another session"
    if task.creation >= len(request.task_creations):
        return f"its submission has no entry {task.creation}"
    asked = request.task_creations[task.creation]
    if (
        asked.payload_id != task.payload_id
        or list(asked.data_dependencies) != task.data_dependencies
        or list(asked.expected_output_keys) != task.expected_output_ids
    ):
        return "it is not what its submission asks for (payload, inputs or outputs differ)"
    return None
