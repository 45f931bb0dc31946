"""The task graph's engine: submission, readiness, and what completing or aborting a result does.

A task waits on its payload and its data dependencies. At submission each input not completed yet
is counted in the task's ``remaining`` and indexed (:class:`ControlDependency`); whoever completes a
result decrements the count of every task waiting on it, in the same transaction, and a task whose
count reaches 0 is queued (``submitted``; ``paused`` in a paused session). Nothing polls.

Why this cannot lose a wake-up: submission locks the rows of the results it reads (``SELECT … FOR
UPDATE``) before counting, and completion writes those rows before decrementing. Whichever
transaction comes second sees the other's work: a completion after the submission finds its
dependency rows, a submission after the completion finds the result completed and does not count it.

An aborted result (its owner task failed or was cancelled, its session cancelled) ends every task
waiting on it (error, or cancelled when the abort came from a cancellation) and, through their own
outputs, everything downstream. Every change records its events (:mod:`facilitator.control.events`)
in its transaction. Every function here is sync and runs inside the caller's ``transaction.atomic``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc
from django.db.models import F
from django.utils import timezone

from facilitator.control import dispatch, events
from facilitator.control.calls import Refused
from facilitator.control.models import (
    ControlDependency,
    ControlResult,
    ControlSession,
    ControlSubmission,
    ControlTask,
)
from protocol.armonik_api.protos import objects_pb2, result_status_pb2, session_status_pb2, task_status_pb2

__all__ = [
    "FINAL",
    "Creation",
    "abort_results",
    "cancel_session_work",
    "cancel_tasks",
    "complete_results",
    "end",
    "merged_options",
    "pause_session_work",
    "resume_session_work",
    "submit",
]

T = task_status_pb2.TaskStatus
R = result_status_pb2.ResultStatus
S = session_status_pb2.SessionStatus
PENDING, SUBMITTED, PAUSED = T.TASK_STATUS_PENDING, T.TASK_STATUS_SUBMITTED, T.TASK_STATUS_PAUSED
COMPLETED, ERROR, CANCELLED = T.TASK_STATUS_COMPLETED, T.TASK_STATUS_ERROR, T.TASK_STATUS_CANCELLED
FINAL = frozenset({COMPLETED, ERROR, T.TASK_STATUS_TIMEOUT, CANCELLED, T.TASK_STATUS_RETRIED})
MAX_TASKS_A_CALL = 10_000


@dataclass
class Creation:
    """One task to submit, as a SubmitTasks request describes it (ids only; options already merged)."""

    payload_id: str
    data_dependencies: list[str]
    expected_output_ids: list[str]
    options: objects_pb2.TaskOptions
    task_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def merged_options(base: objects_pb2.TaskOptions, override: objects_pb2.TaskOptions) -> objects_pb2.TaskOptions:
    """``base`` with every field ``override`` sets replacing its own; the ``options`` maps merge key by key."""
    out = objects_pb2.TaskOptions()
    out.CopyFrom(base)
    for descriptor, value in override.ListFields():
        if descriptor.name == "options":
            out.options.update(value)
        elif descriptor.message_type is not None:
            getattr(out, descriptor.name).CopyFrom(value)
        else:
            setattr(out, descriptor.name, value)
    return out


def _status_name(enum: object, status: int, prefix: str) -> str:
    return enum.Name(status).removeprefix(prefix).lower()


def _refuse_inputs(session: ControlSession, creations: list[Creation], delegating: str) -> dict[str, ControlResult]:
    """The results the creations name, locked; or the refusal of the first thing wrong with them."""
    named: set[str] = set()
    outputs: Counter[str] = Counter()
    for c in creations:
        if not c.payload_id:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "a task needs a payload (payload_id)")
        named.update([c.payload_id, *c.data_dependencies, *c.expected_output_ids])
        outputs.update(set(c.expected_output_ids))
        both = set(c.expected_output_ids) & {c.payload_id, *c.data_dependencies}
        if both:
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT, f"result {sorted(both)[0]} is both an input and an output of a task"
            )
    twice = [r for r, n in outputs.items() if n > 1]
    if twice:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"result {twice[0]} is the expected output of two tasks")
    found = {r.id: r for r in ControlResult.objects.select_for_update().filter(session=session, id__in=named)}
    missing = sorted(named - found.keys())
    if missing:
        raise Refused(grpc.StatusCode.NOT_FOUND, f"no result {missing[0]!r} in session {session.id}")
    for c in creations:
        for result_id in (c.payload_id, *c.data_dependencies):
            status = found[result_id].status
            if status in (R.RESULT_STATUS_ABORTED, R.RESULT_STATUS_DELETED):
                name = _status_name(R, status, "RESULT_STATUS_")
                raise Refused(grpc.StatusCode.FAILED_PRECONDITION, f"input {result_id} is {name}: it will never come")
        for result_id in c.expected_output_ids:
            result = found[result_id]
            if result.status != R.RESULT_STATUS_CREATED:
                name = _status_name(R, result.status, "RESULT_STATUS_")
                raise Refused(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"result {result_id} is {name}: only a result still to be written can be a task's output",
                )
            if result.owner_task_id and result.owner_task_id != delegating:
                raise Refused(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"result {result_id} is already the output of task {result.owner_task_id}",
                )
    return found


def submit(
    session: ControlSession,
    creations: list[Creation],
    *,
    created_by: str = "",
    parent_task_ids: Iterable[str] = (),
    submission: ControlSubmission | None = None,
) -> list[ControlTask]:
    """Create ``creations`` in ``session`` (locked, and checked by the caller to accept them).

    ``created_by`` is the parent task for a worker's submission ("" for the client's); the parent
    may hand its own expected outputs to the children (delegation). ``submission`` is the client's
    signed call the creations came in, in its order (each task keeps its entry's index).
    """
    if not creations:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "no tasks to submit")
    if len(creations) > MAX_TASKS_A_CALL:
        raise Refused(
            grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_TASKS_A_CALL} tasks a call, not {len(creations)}"
        )
    results = _refuse_inputs(session, creations, created_by)
    now = timezone.now()
    queued = PAUSED if session.status == S.SESSION_STATUS_PAUSED else SUBMITTED
    parents = list(parent_task_ids)
    tasks, waits, owned, recorded = [], [], [], []
    for index, c in enumerate(creations):
        inputs = dict.fromkeys([c.payload_id, *c.data_dependencies])  # each once, in order
        unmet = [r for r in inputs if results[r].status != R.RESULT_STATUS_COMPLETED]
        task = ControlTask(
            id=c.task_id,
            session=session,
            status=queued if not unmet else PENDING,
            options=c.options.SerializeToString(deterministic=True),
            partition_id=c.options.partition_id,
            priority=c.options.priority,
            payload_id=c.payload_id,
            data_dependencies=list(c.data_dependencies),
            expected_output_ids=list(c.expected_output_ids),
            parent_task_ids=parents,
            initial_task_id=c.task_id,
            created_by=created_by,
            remaining=len(unmet),
            created_at=now,
            submitted_at=None if unmet else now,
            submission=submission,
            creation=index,
        )
        tasks.append(task)
        waits += [ControlDependency(task_id=task.id, result_id=r) for r in unmet]
        recorded.append(events.new_task(task))
        for result_id in c.expected_output_ids:
            result = results[result_id]
            recorded.append(events.owner_update(result_id, result.owner_task_id, task.id))
            result.owner_task_id = task.id
            owned.append(result)
    ControlTask.objects.bulk_create(tasks, batch_size=500)
    ControlDependency.objects.bulk_create(waits, batch_size=500)
    ControlResult.objects.bulk_update(owned, ["owner_task_id"], batch_size=500)
    events.record(session.id, recorded)
    if any(t.status == SUBMITTED for t in tasks):
        dispatch.soon()
    return tasks


def complete_results(session_id: str, result_ids: list[str], *, into: list[events.Change] | None = None) -> list[str]:
    """``result_ids`` (their rows already written completed, with their data) wake their tasks.

    Returns the ids of the tasks this made runnable. The change's events are recorded, or, given
    ``recorded``, appended to it for the caller to record with its own (one numbering, not two).
    """
    if not result_ids:
        return []
    changes = [events.result_status(r, R.RESULT_STATUS_COMPLETED) for r in result_ids]
    waiting = Counter(ControlDependency.objects.filter(result_id__in=result_ids).values_list("task_id", flat=True))
    by_count: dict[int, list[str]] = {}
    for task_id, count in waiting.items():
        by_count.setdefault(count, []).append(task_id)
    for count, task_ids in by_count.items():
        ControlTask.objects.filter(id__in=task_ids).update(remaining=F("remaining") - count)
    ControlDependency.objects.filter(result_id__in=result_ids).delete()
    ready = list(
        ControlTask.objects.filter(id__in=list(waiting), remaining=0, status=PENDING).values_list("id", flat=True)
    )
    if ready:
        paused = ControlSession.objects.filter(id=session_id, status=S.SESSION_STATUS_PAUSED).exists()
        queued = PAUSED if paused else SUBMITTED
        ControlTask.objects.filter(id__in=ready).update(status=queued, submitted_at=timezone.now())
        changes += [events.task_status(t, queued) for t in ready]
        if queued == SUBMITTED:
            dispatch.soon()
    if into is None:
        events.record(session_id, changes)
    else:
        into += changes
    return ready


def abort_results(session_id: str, result_ids: Iterable[str], why: str, *, cancelled: bool = False) -> None:
    """Abort ``result_ids`` (those not completed yet) and end everything downstream of them.

    Tasks waiting on an aborted result end in error (cancelled, when ``cancelled``: the abort came
    from a cancellation) with a message naming the input; their own outputs abort in turn.
    """
    ending = CANCELLED if cancelled else ERROR
    pending = {r: why for r in result_ids}
    while pending:
        rows = list(
            ControlResult.objects.filter(session_id=session_id, id__in=list(pending), status=R.RESULT_STATUS_CREATED)
        )
        reasons, pending = pending, {}
        if not rows:
            break
        ids = [r.id for r in rows]
        ControlResult.objects.filter(id__in=ids).update(status=R.RESULT_STATUS_ABORTED)
        recorded = [events.result_status(r, R.RESULT_STATUS_ABORTED) for r in ids]
        downstream = ControlDependency.objects.filter(result_id__in=ids).exclude(task__status__in=FINAL)
        first_input: dict[str, str] = {}
        for task_id, result_id in downstream.values_list("task_id", "result_id"):
            first_input.setdefault(task_id, result_id)
        tasks = list(ControlTask.objects.filter(id__in=list(first_input)))
        for task in tasks:
            result_id = first_input[task.id]
            message = f"input {result_id} was aborted: {reasons[result_id]}"
            end(task, ending, message)
            recorded.append(events.task_status(task.id, ending))
            for output in task.expected_output_ids:
                pending.setdefault(output, f"task {task.id} did not run ({message})")
        ControlTask.objects.bulk_update(tasks, ["status", "status_message", "output_error", "ended_at"], batch_size=500)
        events.record(session_id, recorded)


def end(task: ControlTask, status: int, message: str) -> None:
    """``task`` (in memory) ends in ``status``; its error is ``message`` unless it completed."""
    task.status, task.status_message, task.ended_at = status, message[:1000], timezone.now()
    task.output_error = message if status != COMPLETED else ""


def cancel_tasks(session_id: str, tasks: list[ControlTask], why: str) -> list[ControlTask]:
    """End ``tasks`` (those not ended already) cancelled; their outputs abort, and what waits on them."""
    live = [t for t in tasks if t.status not in FINAL]
    for task in live:
        end(task, CANCELLED, why)
    ControlTask.objects.bulk_update(live, ["status", "status_message", "output_error", "ended_at"], batch_size=500)
    events.record(session_id, [events.task_status(t.id, CANCELLED) for t in live])
    outputs = [r for t in live for r in t.expected_output_ids]
    abort_results(session_id, outputs, f"its task was cancelled ({why})", cancelled=True)
    return tasks


def cancel_session_work(session: ControlSession) -> None:
    """A cancelled session: every task not ended is cancelled and every result not written aborted."""
    live = list(session.tasks.exclude(status__in=FINAL))
    cancel_tasks(session.id, live, f"session {session.id} was cancelled")
    left = session.results.filter(status=R.RESULT_STATUS_CREATED).values_list("id", flat=True)
    abort_results(session.id, list(left), f"session {session.id} was cancelled", cancelled=True)


def pause_session_work(session: ControlSession) -> None:
    """A paused session: its queued tasks wait (paused) until it resumes; running ones go on."""
    _move(session.id, SUBMITTED, PAUSED)


def resume_session_work(session: ControlSession) -> None:
    _move(session.id, PAUSED, SUBMITTED)
    dispatch.soon()


def _move(session_id: str, source: int, target: int) -> None:
    ids = list(ControlTask.objects.filter(session_id=session_id, status=source).values_list("id", flat=True))
    ControlTask.objects.filter(id__in=ids).update(status=target)
    events.record(session_id, [events.task_status(t, target) for t in ids])
