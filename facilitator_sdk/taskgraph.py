"""Questions about a task graph that ArmoniK's API answers only piece by piece.

:func:`why_waiting` says why a task has not run (its unmet inputs, who owes them, and in what state
they are) and where it comes from (its retry lineage); :func:`counts` counts a session's tasks by
status. Both work over any channel to the control plane (:func:`facilitator_sdk.control.signed_channel`)
with Gridmarket's own stubs of the API, so they need nothing of the ``armonik`` package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from protocol.armonik_api.protos import (
    filters_pb2,
    result_status_pb2,
    results_pb2,
    results_pb2_grpc,
    task_status_pb2,
    tasks_pb2,
    tasks_pb2_grpc,
)

__all__ = ["Input", "WaitReport", "counts", "status_name", "why_waiting"]

T = task_status_pb2.TaskStatus
R = result_status_pb2.ResultStatus


def status_name(status: int, *, result: bool = False) -> str:
    """``pending``, ``completed`` … for a task status (or, with ``result``, a result status)."""
    enum, prefix = (R, "RESULT_STATUS_") if result else (T, "TASK_STATUS_")
    return enum.Name(status).removeprefix(prefix).lower()


@dataclass(frozen=True)
class Input:
    """One input of a task that is not completed yet, and the task that owes it."""

    result_id: str
    name: str
    status: str  # the result's: created, aborted, deleted …
    owner_task_id: str  # "": nobody will write it (the client must upload it)
    owner_status: str  # the owner task's status, "" without one


@dataclass(frozen=True)
class WaitReport:
    """Why a task has not run, and where it comes from."""

    task_id: str
    status: str
    status_message: str
    unmet: list[Input] = field(default_factory=list)
    retry_of_ids: list[str] = field(default_factory=list)
    initial_task_id: str = ""

    def lines(self) -> list[str]:
        """The report as a person reads it."""
        out = [f"task {self.task_id}: {self.status}" + (f" ({self.status_message})" if self.status_message else "")]
        if self.retry_of_ids:
            out.append(f"  a retry of {' → '.join(self.retry_of_ids)} (first: {self.initial_task_id})")
        if self.status not in ("pending", "paused", "submitted", "dispatched"):
            return out
        if not self.unmet:
            out.append("  every input is there: it waits for an executor of its partition")
        for item in self.unmet:
            owner = (
                f"owed by task {item.owner_task_id} ({item.owner_status})"
                if item.owner_task_id
                else "owed by nobody: upload it (UploadResultData)"
            )
            out.append(f"  waits on {item.name or item.result_id} [{item.result_id}], {item.status}: {owner}")
        return out


def why_waiting(channel: grpc.Channel, task_id: str) -> WaitReport:
    """What ``task_id`` waits on: each input not completed, its owner task and that task's status."""
    tasks, results = tasks_pb2_grpc.TasksStub(channel), results_pb2_grpc.ResultsStub(channel)
    task = tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id)).task
    inputs = list(dict.fromkeys([task.payload_id, *task.data_dependencies]))
    unmet = []
    for result_id in inputs:
        result = results.GetResult(results_pb2.GetResultRequest(result_id=result_id)).result
        if result.status == R.RESULT_STATUS_COMPLETED:
            continue
        owner_status = ""
        if result.owner_task_id:
            owner = tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=result.owner_task_id)).task
            owner_status = status_name(owner.status)
        unmet.append(
            Input(result_id, result.name, status_name(result.status, result=True), result.owner_task_id, owner_status)
        )
    return WaitReport(
        task_id=task.id,
        status=status_name(task.status),
        status_message=task.status_message,
        unmet=unmet,
        retry_of_ids=list(task.retry_of_ids),
        initial_task_id=task.initial_task_id,
    )


def counts(channel: grpc.Channel, session_id: str) -> dict[str, int]:
    """How many of the session's tasks are in each status (statuses with none left out)."""
    condition = tasks_pb2.FilterField(
        field=tasks_pb2.TaskField(task_summary_field=tasks_pb2.TaskSummaryField(field=1)),  # session id
        filter_string=filters_pb2.FilterString(value=session_id),
    )
    request = tasks_pb2.CountTasksByStatusRequest(
        filters=tasks_pb2.Filters(**{"or": [tasks_pb2.FiltersAnd(**{"and": [condition]})]})
    )
    reply = tasks_pb2_grpc.TasksStub(channel).CountTasksByStatus(request)
    return {status_name(c.status): c.count for c in reply.status}
