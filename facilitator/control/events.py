"""A session's events: recorded with the change they describe, numbered, pushed to subscribers.

Whoever changes a task or a result records its event in the same transaction (:func:`record`), so
an event exists exactly when its change does. Each session numbers its events 1, 2, 3 … with no
gap; the number travels in every ``EventSubscriptionResponse`` as field 100 (``sequence``), and a
subscriber that lost its stream asks again with ``after_sequence`` (field 100 of the request) to
get every event after it exactly once. Both fields are Gridmarket's: the stock client ignores them.

A subscription without a cursor starts, as ArmoniK's does, with the present: a ``new_task`` for
every task and a ``new_result`` for every result of the session (with their statuses now), then
every event after that moment.

Subscribers are woken when a transaction that recorded events commits in this process
(:data:`hub`); one that hears nothing looks again every ``GRID_CONTROL_EVENTS_RECHECK_S``, which
covers events recorded by another process.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from facilitator.control.auth import caller
from facilitator.control.calls import Refused, answer
from facilitator.control.filters import matches
from facilitator.control.models import ControlEvent, ControlResult, ControlSession, ControlTask
from node import sql
from protocol.armonik_api.protos import events_pb2, events_pb2_grpc

__all__ = [
    "Change",
    "EventsService",
    "hub",
    "new_result",
    "new_task",
    "owner_update",
    "record",
    "result_status",
    "task_status",
]

E = events_pb2.EventsEnum
Reply = events_pb2.EventSubscriptionResponse
Change = tuple[int, str, str, Reply]  # an event to record: kind, task id, result id, message
BATCH = 500  # events read from the database at a time


# -- building events (sync, inside the change's transaction) ------------------------------------


def new_task(task: ControlTask) -> Change:
    return (
        E.EVENTS_ENUM_NEW_TASK,
        task.id,
        "",
        Reply(
            new_task=Reply.NewTask(
                task_id=task.id,
                payload_id=task.payload_id,
                origin_task_id=task.created_by,
                status=task.status,
                expected_output_keys=task.expected_output_ids,
                data_dependencies=task.data_dependencies,
                retry_of_ids=task.retry_of_ids,
                parent_task_ids=task.parent_task_ids,
            )
        ),
    )


def task_status(task_id: str, status: int) -> Change:
    return (
        E.EVENTS_ENUM_TASK_STATUS_UPDATE,
        task_id,
        "",
        Reply(task_status_update=Reply.TaskStatusUpdate(task_id=task_id, status=status)),
    )


def new_result(result: ControlResult) -> Change:
    return (
        E.EVENTS_ENUM_NEW_RESULT,
        "",
        result.id,
        Reply(new_result=Reply.NewResult(result_id=result.id, owner_id=result.owner_task_id, status=result.status)),
    )


def result_status(result_id: str, status: int) -> Change:
    return (
        E.EVENTS_ENUM_RESULT_STATUS_UPDATE,
        "",
        result_id,
        Reply(result_status_update=Reply.ResultStatusUpdate(result_id=result_id, status=status)),
    )


def owner_update(result_id: str, previous: str, current: str) -> Change:
    return (
        E.EVENTS_ENUM_RESULT_OWNER_UPDATE,
        "",
        result_id,
        Reply(
            result_owner_update=Reply.ResultOwnerUpdate(
                result_id=result_id, previous_owner_id=previous, current_owner_id=current
            )
        ),
    )


def record(session_id: str, events: Iterable[Change]) -> None:
    """Number and store ``events`` of one session; must run inside the change's transaction."""
    events = list(events)
    if not events:
        return
    table = sql.table(ControlSession)
    numbered = sql.fetch(
        f"UPDATE {table} SET event_seq = event_seq + %s WHERE id = %s RETURNING event_seq", [len(events), session_id]
    )
    if not numbered:
        return  # the session is gone (deleted meanwhile): its events with it
    last = numbered[0][0]
    first = last - len(events) + 1
    rows = []
    for seq, (kind, task_id, result_id, message) in enumerate(events, start=first):
        message.session_id = session_id
        message.sequence = seq
        rows.append(
            ControlEvent(
                session_id=session_id,
                seq=seq,
                kind=kind,
                task_id=task_id,
                result_id=result_id,
                message=message.SerializeToString(),
            )
        )
    ControlEvent.objects.bulk_create(rows, batch_size=BATCH)
    transaction.on_commit(lambda: hub.notify(session_id))


# -- waking subscribers ----------------------------------------------------------------------------


class _Hub:
    """Wakes the subscribers of a session when its events commit (from any thread of this process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def notify(self, session_id: str) -> None:
        with self._lock:
            waiting = list(self._waiting.get(session_id, ()))
        for loop, event in waiting:
            loop.call_soon_threadsafe(event.set)

    def subscribe(self, session_id: str) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiting.setdefault(session_id, set()).add(entry)
        return entry

    def unsubscribe(self, session_id: str, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            entries = self._waiting.get(session_id, set())
            entries.discard(entry)
            if not entries:
                self._waiting.pop(session_id, None)


hub = _Hub()


# -- the stream ------------------------------------------------------------------------------------


def _start(client: str, session_id: str, after: int | None) -> tuple[int, list[Reply]]:
    """Where the stream starts (the last sequence number already covered) and the present to send first."""
    with transaction.atomic():
        session = ControlSession.objects.filter(id=session_id, client_hotkey=client).first()
        if session is None:
            raise Refused(grpc.StatusCode.NOT_FOUND, f"no session {session_id!r}")
        if after is not None:
            if after > session.event_seq:
                raise Refused(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"session {session_id} has {session.event_seq} events: there is no event {after}",
                )
            return after, []
        present = [new_task(t)[3] for t in session.tasks.order_by("created_at", "id")]
        present += [new_result(r)[3] for r in session.results.order_by("created_at", "id")]
        for message in present:
            message.session_id = session_id
            message.sequence = session.event_seq  # the present as of this event
        return session.event_seq, present


def _after(session_id: str, seq: int) -> list[ControlEvent]:
    return list(ControlEvent.objects.filter(session_id=session_id, seq__gt=seq).order_by("seq")[:BATCH])


class _Wanted:
    """A subscription's choice of events: their kinds and the task and result filters."""

    def __init__(self, request: Any) -> None:
        self.kinds = set(request.returned_events)
        # an empty filter (the stock client always sends one) matches everything: no rows to read
        self.tasks_filters = request.tasks_filters if getattr(request.tasks_filters, "or") else None
        self.results_filters = request.results_filters if getattr(request.results_filters, "or") else None

    def kind(self, kind: int) -> bool:
        return not self.kinds or kind in self.kinds

    def rows(self, messages: list[Reply]) -> tuple[dict[str, ControlTask], dict[str, ControlResult]]:
        """The tasks and results the filters must look at, read once for a batch."""
        task_ids, result_ids = set(), set()
        for message in messages:
            task_id, result_id = _about(message)
            (task_ids if task_id else result_ids).add(task_id or result_id)
        tasks = {t.id: t for t in ControlTask.objects.filter(id__in=task_ids)} if self.tasks_filters else {}
        results = {r.id: r for r in ControlResult.objects.filter(id__in=result_ids)} if self.results_filters else {}
        return tasks, results

    def passes(self, message: Reply, tasks: dict[str, ControlTask], results: dict[str, ControlResult]) -> bool:
        from facilitator.control.results import result_value  # results record events: imported late
        from facilitator.control.tasks import task_value

        task_id, result_id = _about(message)
        if task_id and self.tasks_filters is not None:
            task = tasks.get(task_id)
            return task is not None and matches(self.tasks_filters, lambda field: task_value(task, field))
        if result_id and self.results_filters is not None:
            result = results.get(result_id)
            return result is not None and matches(self.results_filters, lambda field: result_value(result, field))
        return True


_KIND_OF = {
    "new_task": E.EVENTS_ENUM_NEW_TASK,
    "task_status_update": E.EVENTS_ENUM_TASK_STATUS_UPDATE,
    "new_result": E.EVENTS_ENUM_NEW_RESULT,
    "result_status_update": E.EVENTS_ENUM_RESULT_STATUS_UPDATE,
    "result_owner_update": E.EVENTS_ENUM_RESULT_OWNER_UPDATE,
}


def _about(message: Reply) -> tuple[str, str]:
    """(task id, result id) of an event, one of them empty."""
    update = message.WhichOneof("update")
    body = getattr(message, update)
    return (body.task_id, "") if update in ("new_task", "task_status_update") else ("", body.result_id)


def _chosen(wanted: _Wanted, messages: list[Reply]) -> list[Reply]:
    messages = [m for m in messages if wanted.kind(_KIND_OF[m.WhichOneof("update")])]
    if not messages or (wanted.tasks_filters is None and wanted.results_filters is None):
        return messages
    tasks, results = wanted.rows(messages)
    return [m for m in messages if wanted.passes(m, tasks, results)]


async def _events(client: str, request: Any) -> AsyncIterator[Reply]:
    after = request.after_sequence if request.HasField("after_sequence") else None
    wanted = _Wanted(request)
    seq, present = await sync_to_async(_start)(client, request.session_id, after)
    for message in await sync_to_async(_chosen)(wanted, present):
        yield message
    entry = hub.subscribe(request.session_id)
    try:
        while True:
            entry[1].clear()
            rows = await sync_to_async(_after)(request.session_id, seq)
            if rows:
                seq = rows[-1].seq
                messages = [Reply.FromString(bytes(r.message)) for r in rows]
                for message in await sync_to_async(_chosen)(wanted, messages):
                    yield message
                continue
            try:
                await asyncio.wait_for(entry[1].wait(), settings.GRID_CONTROL_EVENTS_RECHECK_S)
            except TimeoutError:
                pass
    finally:
        hub.unsubscribe(request.session_id, entry)


class EventsService(events_pb2_grpc.EventsServicer):
    """``armonik.api.grpc.v1.events.Events``: one session's events, pushed as they commit."""

    async def GetEvents(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        client = caller()
        async with answer(context):
            if any(k not in _KIND_OF.values() for k in request.returned_events):
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "returned_events names an unknown event kind")
            async for message in _events(client, request):
                yield message
