"""ArmoniK's Tasks service: a client's tasks, their submission, their timing chain, their cancellation.

Submission goes through the engine (:mod:`facilitator.control.engine`): a task's options are its
session's defaults with the request's and then the task's own set fields laid over them; its
partition is the options' ``partition_id``, else the session's first partition. A task is reached
only through a session of the caller's: another client's is ``NOT_FOUND``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import grpc
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from facilitator.control import engine, partitions
from facilitator.control.auth import call_signature, caller
from facilitator.control.calls import Refused, answer
from facilitator.control.filters import BadFilter, listed, matches
from facilitator.control.models import ControlSession, ControlSubmission, ControlTask
from facilitator.control.sessions import PAUSED, RUNNING, check_options, option_value, own_session, session_options
from protocol.armonik_api.protos import objects_pb2, tasks_pb2, tasks_pb2_grpc

__all__ = ["TasksService", "task_detailed", "task_summary", "task_value"]

MAX_IDS_A_CALL = 10_000


# -- rows (sync) ---------------------------------------------------------------------------------


def _accepting(client: str, session_id: str) -> ControlSession:
    """The caller's session, locked, if it takes tasks from the client now."""
    own_session(client, session_id)
    session = ControlSession.objects.select_for_update().get(id=session_id)
    if session.status not in (RUNNING, PAUSED) or not session.client_submission:
        state = "closed to client submissions" if session.status in (RUNNING, PAUSED) else "not running"
        raise Refused(grpc.StatusCode.FAILED_PRECONDITION, f"session {session_id} is {state}: no new tasks")
    return session


def _creations(session: ControlSession, request: Any) -> list[engine.Creation]:
    on_offer = partitions.offered()
    base = session_options(session)
    if request.HasField("task_options"):
        base = engine.merged_options(base, request.task_options)
    creations = []
    for wanted in request.task_creations:
        options = engine.merged_options(base, wanted.task_options) if wanted.HasField("task_options") else base
        if not options.partition_id and session.partition_ids:
            options = engine.merged_options(options, objects_pb2.TaskOptions(partition_id=session.partition_ids[0]))
        check_options(options, list(session.partition_ids))
        if not options.partition_id:
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "a task needs a partition (an executor class): set partition_id in its options or the session's",
            )
        if options.partition_id not in on_offer:
            raise Refused(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no miner offers partition {options.partition_id!r} now"
                f" (offered: {', '.join(on_offer) or 'none, no miner is connected'})",
            )
        creations.append(
            engine.Creation(
                payload_id=wanted.payload_id,
                data_dependencies=list(wanted.data_dependencies),
                expected_output_ids=list(wanted.expected_output_keys),
                options=options,
            )
        )
    return creations


def _submit(client: str, request: Any, signature: dict[str, str]) -> list[ControlTask]:
    with transaction.atomic():
        session = _accepting(client, request.session_id)
        creations = _creations(session, request)
        proof = ControlSubmission.objects.create(
            session=session, signature=signature, body=request.SerializeToString(deterministic=True)
        )
        return engine.submit(session, creations, submission=proof)


def _own_tasks(client: str, task_ids: list[str]) -> list[ControlTask]:
    """The caller's tasks named, in the order named; every one must be there."""
    if len(task_ids) > MAX_IDS_A_CALL:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_IDS_A_CALL} task ids a call")
    found = {t.id: t for t in ControlTask.objects.filter(id__in=task_ids, session__client_hotkey=client)}
    missing = [t for t in task_ids if t not in found]
    if missing:
        raise Refused(grpc.StatusCode.NOT_FOUND, f"no task {missing[0]!r}")
    return [found[t] for t in dict.fromkeys(task_ids)]


def _cancel(client: str, task_ids: list[str]) -> list[ControlTask]:
    with transaction.atomic():
        tasks = _own_tasks(client, task_ids)
        for session_id in {t.session_id for t in tasks}:
            engine.cancel_tasks(session_id, [t for t in tasks if t.session_id == session_id], "cancelled by the client")
        return tasks


def _sessions_named(filters: Any) -> set[str] | None:
    """The session ids that every branch of ``filters`` pins by equality, if each does: a cheaper query."""
    ors = list(getattr(filters, "or"))
    if not ors:
        return None
    named: set[str] = set()
    for conjunction in ors:
        pinned = [
            f.filter_string.value
            for f in getattr(conjunction, "and")
            if f.WhichOneof("value_condition") == "filter_string"
            and f.filter_string.operator == 0  # FILTER_STRING_OPERATOR_EQUAL
            and f.field.WhichOneof("field") == "task_summary_field"
            and f.field.task_summary_field.field == 1  # TASK_SUMMARY_ENUM_FIELD_SESSION_ID
        ]
        if not pinned:
            return None
        named.add(pinned[0])
    return named


def _list(client: str, filters: Any) -> list[ControlTask]:
    rows = ControlTask.objects.filter(session__client_hotkey=client)
    sessions = _sessions_named(filters) if filters is not None else None
    if sessions is not None:
        rows = rows.filter(session_id__in=sessions)
    return list(rows.order_by("created_at", "id"))


# -- messages ------------------------------------------------------------------------------------


def _options(task: ControlTask) -> objects_pb2.TaskOptions:
    return objects_pb2.TaskOptions.FromString(bytes(task.options))


def _since(end: dt.datetime | None, start: dt.datetime | None) -> dt.timedelta | None:
    return end - start if end is not None and start is not None else None


_STAMPS = (
    "created_at",
    "submitted_at",
    "received_at",
    "acquired_at",
    "fetched_at",
    "started_at",
    "processed_at",
    "ended_at",
    "pod_ttl",
)


def _durations(task: ControlTask) -> dict[str, dt.timedelta | None]:
    return {
        "creation_to_end_duration": _since(task.ended_at, task.created_at),
        "processing_to_end_duration": _since(task.ended_at, task.started_at),
        "received_to_end_duration": _since(task.ended_at, task.received_at),
    }


def _fill_times(message: Any, task: ControlTask) -> None:
    for name in _STAMPS:
        value = getattr(task, name)
        if value is not None:
            getattr(message, name).FromDatetime(value)
    for name, value in _durations(task).items():
        if value is not None:
            getattr(message, name).FromTimedelta(value)


def task_detailed(task: ControlTask) -> tasks_pb2.TaskDetailed:
    message = tasks_pb2.TaskDetailed(
        id=task.id,
        session_id=task.session_id,
        owner_pod_id=task.owner_pod_id,
        initial_task_id=task.initial_task_id,
        parent_task_ids=task.parent_task_ids,
        data_dependencies=task.data_dependencies,
        expected_output_ids=task.expected_output_ids,
        retry_of_ids=task.retry_of_ids,
        status=task.status,
        status_message=task.status_message,
        options=_options(task),
        payload_id=task.payload_id,
        created_by=task.created_by,
        pod_hostname=task.pod_hostname,
    )
    if task.status in engine.FINAL:
        message.output.success = task.status == engine.COMPLETED
        message.output.error = task.output_error
    _fill_times(message, task)
    return message


def task_summary(task: ControlTask, *, with_errors: bool = False) -> tasks_pb2.TaskSummary:
    message = tasks_pb2.TaskSummary(
        id=task.id,
        session_id=task.session_id,
        owner_pod_id=task.owner_pod_id,
        initial_task_id=task.initial_task_id,
        count_parent_task_ids=len(task.parent_task_ids),
        count_data_dependencies=len(task.data_dependencies),
        count_expected_output_ids=len(task.expected_output_ids),
        count_retry_of_ids=len(task.retry_of_ids),
        status=task.status,
        status_message=task.status_message,
        options=_options(task),
        payload_id=task.payload_id,
        created_by=task.created_by,
        error=task.output_error if with_errors else "",
        pod_hostname=task.pod_hostname,
    )
    _fill_times(message, task)
    return message


_SUMMARY_FIELDS = {  # TaskSummaryEnumField number -> the row's value
    16: lambda t: t.id,
    1: lambda t: t.session_id,
    9: lambda t: t.owner_pod_id,
    10: lambda t: t.initial_task_id,
    20: lambda t: t.payload_id,
    2: lambda t: t.status,
    21: lambda t: t.created_by,
    3: lambda t: t.created_at,
    11: lambda t: t.submitted_at,
    14: lambda t: t.received_at,
    15: lambda t: t.acquired_at,
    19: lambda t: t.fetched_at,
    4: lambda t: t.started_at,
    17: lambda t: t.processed_at,
    5: lambda t: t.ended_at,
    12: lambda t: t.pod_ttl,
    6: lambda t: _durations(t)["creation_to_end_duration"],
    7: lambda t: _durations(t)["processing_to_end_duration"],
    18: lambda t: _durations(t)["received_to_end_duration"],
    13: lambda t: t.pod_hostname,
    8: lambda t: t.output_error,
}


def task_value(task: ControlTask, field: Any) -> Any:
    """The value of an ArmoniK ``TaskField`` on ``task``."""
    if field.WhichOneof("field") == "task_summary_field":
        read = _SUMMARY_FIELDS.get(field.task_summary_field.field)
        if read is None:
            raise BadFilter(f"tasks cannot be filtered or sorted by field {field.task_summary_field.field}")
        return read(task)
    return option_value(_options(task), field)


def _listed(client: str, request: Any) -> tuple[list[ControlTask], int, int]:
    filters = request.filters if request.HasField("filters") else None
    return listed(_list(client, filters), request, task_value, settings.GRID_CONTROL_PAGE_SIZE_MAX)


def _counts(client: str, filters: Any) -> Counter[int]:
    tasks = _list(client, filters)
    return Counter(t.status for t in tasks if matches(filters, lambda field, t=t: task_value(t, field)))


# -- the service ---------------------------------------------------------------------------------


class TasksService(tasks_pb2_grpc.TasksServicer):
    """``armonik.api.grpc.v1.tasks.Tasks``, through the caller's own sessions."""

    async def SubmitTasks(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            tasks = await sync_to_async(_submit)(caller(), request, call_signature())
            Info = tasks_pb2.SubmitTasksResponse.TaskInfo
            return tasks_pb2.SubmitTasksResponse(
                task_infos=[
                    Info(
                        task_id=t.id,
                        expected_output_ids=t.expected_output_ids,
                        data_dependencies=t.data_dependencies,
                        payload_id=t.payload_id,
                    )
                    for t in tasks
                ]
            )

    async def GetTask(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            (task,) = await sync_to_async(_own_tasks)(caller(), [request.task_id])
            return tasks_pb2.GetTaskResponse(task=task_detailed(task))

    async def ListTasks(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            page, size, total = await sync_to_async(_listed)(caller(), request)
            return tasks_pb2.ListTasksResponse(
                tasks=[task_summary(t, with_errors=request.with_errors) for t in page],
                page=request.page,
                page_size=size,
                total=total,
            )

    async def ListTasksDetailed(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            page, size, total = await sync_to_async(_listed)(caller(), request)
            return tasks_pb2.ListTasksDetailedResponse(
                tasks=[task_detailed(t) for t in page], page=request.page, page_size=size, total=total
            )

    async def CancelTasks(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            tasks = await sync_to_async(_cancel)(caller(), list(request.task_ids))
            return tasks_pb2.CancelTasksResponse(tasks=[task_summary(t) for t in tasks])

    async def GetResultIds(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            tasks = await sync_to_async(_own_tasks)(caller(), list(request.task_id))
            Map = tasks_pb2.GetResultIdsResponse.MapTaskResult
            return tasks_pb2.GetResultIdsResponse(
                task_results=[Map(task_id=t.id, result_ids=t.expected_output_ids) for t in tasks]
            )

    async def CountTasksByStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            filters = request.filters if request.HasField("filters") else None
            counts = await sync_to_async(_counts)(caller(), filters)
            return tasks_pb2.CountTasksByStatusResponse(
                status=[objects_pb2.StatusCount(status=s, count=n) for s, n in sorted(counts.items())]
            )
