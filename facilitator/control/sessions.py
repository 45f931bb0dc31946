"""ArmoniK's Sessions service: a client's sessions and their lifecycle (docs/control-plane.md).

Each transition is allowed from the statuses in :data:`ALLOWED_FROM`; any other is
``FAILED_PRECONDITION`` and changes nothing. A session of another client is ``NOT_FOUND``, as one
that does not exist. The database work is plain sync ORM, run through ``sync_to_async``; the
servicer only translates between messages and rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import grpc
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from facilitator.control import engine
from facilitator.control.auth import caller
from facilitator.control.calls import Refused, answer
from facilitator.control.filters import BadFilter, listed
from facilitator.control.models import ControlSession
from protocol.armonik_api.protos import objects_pb2, session_status_pb2, sessions_pb2, sessions_pb2_grpc

__all__ = ["ALLOWED_FROM", "SessionsService", "check_options", "option_value", "own_session", "session_options"]

S = session_status_pb2.SessionStatus
RUNNING, CANCELLED, PAUSED = S.SESSION_STATUS_RUNNING, S.SESSION_STATUS_CANCELLED, S.SESSION_STATUS_PAUSED
CLOSED, PURGED, DELETED = S.SESSION_STATUS_CLOSED, S.SESSION_STATUS_PURGED, S.SESSION_STATUS_DELETED

# transition -> (the statuses it may start from, the status it ends in, the timestamp it sets)
ALLOWED_FROM: dict[str, tuple[frozenset[int], int, str | None]] = {
    "cancel": (frozenset({RUNNING, PAUSED, CLOSED}), CANCELLED, "cancelled_at"),
    "pause": (frozenset({RUNNING}), PAUSED, None),
    "resume": (frozenset({PAUSED}), RUNNING, None),
    "close": (frozenset({RUNNING, PAUSED}), CLOSED, "closed_at"),
    "purge": (frozenset({CLOSED, CANCELLED}), PURGED, "purged_at"),
    "delete": (frozenset({RUNNING, PAUSED, CLOSED, CANCELLED, PURGED}), DELETED, "deleted_at"),
}

# what a transition does to the session's tasks and results (the engine's part)
_WORK = {
    "cancel": engine.cancel_session_work,
    "pause": engine.pause_session_work,
    "resume": engine.resume_session_work,
}

PAST = {name: name + ("d" if name.endswith("e") else "led") for name in ALLOWED_FROM}  # "cancelled", "paused" …


# -- rows (sync) ---------------------------------------------------------------------------------


def _create(client: str, options: bytes, partition_ids: list[str]) -> str:
    session = ControlSession.objects.create(
        id=str(uuid.uuid4()),
        client_hotkey=client,
        status=RUNNING,
        partition_ids=partition_ids,
        options=options,
        created_at=timezone.now(),
    )
    return session.id


def own_session(client: str, session_id: str) -> ControlSession:
    session = ControlSession.objects.filter(id=session_id, client_hotkey=client).first()
    if session is None:
        raise Refused(grpc.StatusCode.NOT_FOUND, f"no session {session_id!r}")
    return session


def _transition(client: str, session_id: str, name: str) -> ControlSession:
    starts, ends, stamp = ALLOWED_FROM[name]
    with transaction.atomic():
        session = own_session(client, session_id)
        if session.status not in starts:
            raise Refused(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"session {session_id} is {_status_name(session.status)}: it cannot be {PAST[name]}",
            )
        session.status = ends
        if stamp is not None:
            setattr(session, stamp, timezone.now())
        if name in _WORK:
            _WORK[name](session)
        if ends == PURGED:
            from facilitator.control.results import delete_session_data  # results build on sessions

            delete_session_data(session)
        if ends == DELETED:
            session.delete()  # its metadata goes; the answer still describes it, deleted
        else:  # only what changed: the engine moved the session's event counter meanwhile
            session.save(update_fields=["status"] + ([stamp] if stamp else []))
    return session


def _stop_submission(client: str, session_id: str, clients: bool, workers: bool) -> ControlSession:
    with transaction.atomic():
        session = own_session(client, session_id)
        session.client_submission = session.client_submission and not clients
        session.worker_submission = session.worker_submission and not workers
        session.save(update_fields=["client_submission", "worker_submission"])
    return session


def _list(client: str) -> list[ControlSession]:
    return list(ControlSession.objects.filter(client_hotkey=client).order_by("created_at", "id"))


# -- messages ------------------------------------------------------------------------------------


def _status_name(status: int) -> str:
    return S.Name(status).removeprefix("SESSION_STATUS_").lower()


def _timestamp(field: Any, value: dt.datetime | None) -> None:
    if value is not None:
        field.FromDatetime(value)


def _ended_at(session: ControlSession) -> dt.datetime | None:
    return session.cancelled_at or session.closed_at


def session_options(session: ControlSession) -> objects_pb2.TaskOptions:
    return objects_pb2.TaskOptions.FromString(bytes(session.options))


def session_raw(session: ControlSession, *, with_options: bool = True) -> sessions_pb2.SessionRaw:
    raw = sessions_pb2.SessionRaw(
        session_id=session.id,
        status=session.status,
        client_submission=session.client_submission,
        worker_submission=session.worker_submission,
        partition_ids=session.partition_ids,
    )
    if with_options:
        raw.options.CopyFrom(session_options(session))
    for name in ("created_at", "cancelled_at", "closed_at", "purged_at", "deleted_at"):
        _timestamp(getattr(raw, name), getattr(session, name))
    ended = _ended_at(session)
    if ended is not None:
        raw.duration.FromTimedelta(ended - session.created_at)
    return raw


_RAW_FIELDS = {  # SessionRawEnumField number -> the record's value
    1: lambda s: s.id,
    2: lambda s: s.status,
    3: lambda s: list(s.partition_ids),
    5: lambda s: s.created_at,
    6: lambda s: s.cancelled_at,
    7: lambda s: (_ended_at(s) - s.created_at) if _ended_at(s) else None,
    8: lambda s: s.closed_at,
    9: lambda s: s.purged_at,
    10: lambda s: s.deleted_at,
    11: lambda s: s.worker_submission,
    12: lambda s: s.client_submission,
}
_OPTION_FIELDS = {  # TaskOptionEnumField number -> the TaskOptions field
    1: "max_duration",
    2: "max_retries",
    3: "priority",
    4: "partition_id",
    5: "application_name",
    6: "application_version",
    7: "application_namespace",
    8: "application_service",
    9: "engine_type",
}


def option_value(options: objects_pb2.TaskOptions, field: Any) -> Any:
    """The value of a task-option field (``task_option_field`` or ``task_option_generic_field``)."""
    kind = field.WhichOneof("field")
    if kind == "task_option_field":
        name = _OPTION_FIELDS.get(field.task_option_field.field)
        if name is None:
            raise BadFilter(f"no task option field {field.task_option_field.field}")
        value = getattr(options, name)
        return value.ToTimedelta() if name == "max_duration" else value
    if kind == "task_option_generic_field":
        return options.options.get(field.task_option_generic_field.field, "")
    raise BadFilter("a filter or sort names no field")


def _value_of(session: ControlSession, field: Any) -> Any:
    """The value of an ArmoniK ``SessionField`` on ``session``."""
    if field.WhichOneof("field") == "session_raw_field":
        read = _RAW_FIELDS.get(field.session_raw_field.field)
        if read is None:
            raise BadFilter(f"sessions cannot be filtered or sorted by field {field.session_raw_field.field}")
        return read(session)
    return option_value(session_options(session), field)


def check_options(options: objects_pb2.TaskOptions, partition_ids: list[str]) -> None:
    if any(not p or len(p) > 128 for p in partition_ids):
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "partition ids must be 1 to 128 characters")
    if options.max_retries < 0:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"max_retries must be 0 or more, not {options.max_retries}")
    if options.max_duration.ToTimedelta() < dt.timedelta(0):
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "max_duration must not be negative")
    if partition_ids and options.partition_id and options.partition_id not in partition_ids:
        raise Refused(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the default partition {options.partition_id!r} is not one of the session's {partition_ids}",
        )


# -- the service ---------------------------------------------------------------------------------


class SessionsService(sessions_pb2_grpc.SessionsServicer):
    """``armonik.api.grpc.v1.sessions.Sessions``, one client's sessions at a time."""

    async def CreateSession(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            partitions = list(request.partition_ids)
            check_options(request.default_task_option, partitions)
            options = request.default_task_option.SerializeToString(deterministic=True)
            session_id = await sync_to_async(_create)(caller(), options, partitions)
            return sessions_pb2.CreateSessionReply(session_id=session_id)

    async def GetSession(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            session = await sync_to_async(own_session)(caller(), request.session_id)
            return sessions_pb2.GetSessionResponse(session=session_raw(session))

    async def ListSessions(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            sessions = await sync_to_async(_list)(caller())
            page, size, total = listed(sessions, request, _value_of, settings.GRID_CONTROL_PAGE_SIZE_MAX)
            return sessions_pb2.ListSessionsResponse(
                sessions=[session_raw(s, with_options=request.with_task_options) for s in page],
                page=request.page,
                page_size=size,
                total=total,
            )

    async def _transition(self, request: Any, context: grpc.aio.ServicerContext, name: str, reply: type) -> Any:
        async with answer(context):
            session = await sync_to_async(_transition)(caller(), request.session_id, name)
            return reply(session=session_raw(session))

    async def CancelSession(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._transition(request, context, "cancel", sessions_pb2.CancelSessionResponse)

    async def PauseSession(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._transition(request, context, "pause", sessions_pb2.PauseSessionResponse)

    async def ResumeSession(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._transition(request, context, "resume", sessions_pb2.ResumeSessionResponse)

    async def CloseSession(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._transition(request, context, "close", sessions_pb2.CloseSessionResponse)

    async def PurgeSession(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._transition(request, context, "purge", sessions_pb2.PurgeSessionResponse)

    async def DeleteSession(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._transition(request, context, "delete", sessions_pb2.DeleteSessionResponse)

    async def StopSubmission(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with answer(context):
            session = await sync_to_async(_stop_submission)(
                caller(), request.session_id, request.client, request.worker
            )
            return sessions_pb2.StopSubmissionResponse(session=session_raw(session))
