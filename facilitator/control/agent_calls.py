"""The agent's calls, relayed up the chain from the executor running a batch job (facilitator/relay.py).

Every call names a task; it is served only if that task is one of the calling job's and still
running (``dispatched``): the relay has already checked that the job is assigned to the validator
that relayed it, and that the attempt is the job's current one. So a worker acts only for the
task its executor runs now.

- ``control.fetch`` {task_id, result_id}: a completed result of the session: its data inline when
  small (``INLINE_BYTES``), else a signed GET URL; with its sha256 and size either way;
- ``control.create`` {task_id, names}: new results of the session, created and owned by the task;
- ``control.put`` {task_id, result_id}: a write-once PUT URL for a result the task may write;
- ``control.stored`` {task_id, result_id, key, sha256, size}: the data is there (the store's own
  digest is checked against the executor's): the result completes, and the tasks waiting on it
  move on, before the call is answered; or {task_id, result_id, data_b64, sha256, size}: small
  data inline, stored here first;
- ``control.done`` {task_id, status, message, times, children}: the task ended. ``completed``
  submits its children (held by the executor until then; they may take over the task's outputs)
  and needs every output written or delegated; ``error`` and ``timeout`` abort its outputs;
  ``infra`` is a grid fault: :func:`fault`.

A grid fault retries the task as a new task (``retry_of_ids`` names the ones before it) that
takes over its outputs, up to its ``max_retries``; after that it is an error.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from facilitator import relay
from facilitator.control import dispatch, engine, events
from facilitator.control.models import ControlResult, ControlSession, ControlTask
from facilitator.control.results import upload_key
from facilitator.models import Job
from facilitator.relay import RelayRefused
from facilitator.storage import ObjectNotFound, get_store
from protocol.armonik_api.protos import objects_pb2, result_status_pb2, session_status_pb2, task_status_pb2

__all__ = ["fail", "fault"]

T = task_status_pb2.TaskStatus
R = result_status_pb2.ResultStatus
S = session_status_pb2.SessionStatus
URL_S = 3600
INLINE_BYTES = 64 * 1024  # data this small travels in the relayed call itself, not through a URL
ENDINGS = {"completed": T.TASK_STATUS_COMPLETED, "error": T.TASK_STATUS_ERROR, "timeout": T.TASK_STATUS_TIMEOUT}
TIMES = ("received_at", "acquired_at", "fetched_at", "started_at", "processed_at")


def _text(body: dict[str, Any], name: str, longest: int = 64) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > longest:
        raise RelayRefused("bad_call", f"{name} must be a string of 1 to {longest} characters")
    return value


def _running(job: Job, body: dict[str, Any], *, lock: bool = False) -> ControlTask:
    """The task the call names, if the calling job runs it now."""
    found = ControlTask.objects.select_for_update() if lock else ControlTask.objects
    task = found.filter(id=_text(body, "task_id"), job_id=str(job.id)).first()
    if task is None:
        raise RelayRefused("unknown_task", f"task {body.get('task_id')} is not one of job {job.id}'s")
    if task.status != T.TASK_STATUS_DISPATCHED:
        raise RelayRefused("task_over", f"task {task.id} is {T.Name(task.status).removeprefix('TASK_STATUS_').lower()}")
    return task


def _result(task: ControlTask, result_id: str, *, lock: bool = False) -> ControlResult:
    found = ControlResult.objects.select_for_update() if lock else ControlResult.objects
    result = found.filter(id=result_id, session_id=task.session_id).first()
    if result is None:
        raise RelayRefused("unknown_result", f"no result {result_id} in session {task.session_id}")
    return result


def _writable(task: ControlTask, result: ControlResult) -> None:
    if result.id not in task.expected_output_ids and result.created_by != task.id:
        raise RelayRefused("not_yours", f"result {result.id} is neither an output of task {task.id} nor one it created")
    if result.status != R.RESULT_STATUS_CREATED:
        raise RelayRefused(
            "written", f"result {result.id} is {R.Name(result.status).removeprefix('RESULT_STATUS_').lower()}"
        )


@relay.register("control.fetch")
def _fetch(job: Job, call: Any) -> dict[str, Any]:
    task = _running(job, call.body)
    result = _result(task, _text(call.body, "result_id"))
    if result.status != R.RESULT_STATUS_COMPLETED or not result.store_key:
        raise RelayRefused("no_data", f"result {result.id} has no data")
    found = {"sha256": result.sha256, "size": result.size}
    if result.size <= INLINE_BYTES:
        return {**found, "data_b64": base64.b64encode(get_store().read(result.store_key)).decode()}
    return {**found, "url": get_store().signed_url(result.store_key, "GET", URL_S)}


@relay.register("control.create")
def _create(job: Job, call: Any) -> dict[str, Any]:
    names = call.body.get("names")
    if (
        not isinstance(names, list)
        or not names
        or len(names) > 10_000
        or not all(isinstance(n, str) and len(n) <= 256 for n in names)
    ):
        raise RelayRefused("bad_call", "names must be 1 to 10,000 strings of at most 256 characters")
    with transaction.atomic():
        task = _running(job, call.body)
        now = timezone.now()
        made = [
            ControlResult(
                id=str(uuid.uuid4()),
                session_id=task.session_id,
                name=name,
                owner_task_id=task.id,
                created_by=task.id,
                status=R.RESULT_STATUS_CREATED,
                created_at=now,
            )
            for name in names
        ]
        ControlResult.objects.bulk_create(made)
        events.record(task.session_id, [events.new_result(r) for r in made])
    return {"result_ids": [r.id for r in made]}


@relay.register("control.put")
def _put(job: Job, call: Any) -> dict[str, Any]:
    task = _running(job, call.body)
    result = _result(task, _text(call.body, "result_id"))
    _writable(task, result)
    key = upload_key(task.session_id, result.id)
    return {"url": get_store().signed_url(key, "PUT", URL_S), "key": key}


@relay.register("control.stored")
def _stored(job: Job, call: Any) -> dict[str, Any]:
    body = call.body
    inline = "data_b64" in body
    data = _inline_data(body) if inline else b""
    key = ""
    try:
        with transaction.atomic():
            task = _running(job, body, lock=True)
            result = _result(task, _text(body, "result_id"), lock=True)
            _writable(task, result)
            if inline:  # stored here, under a key of its own, as a PUT URL's would be
                key = upload_key(task.session_id, result.id)
                info = get_store().put(key, data, overwrite=False)
            else:
                key = _text(body, "key", longest=1024)
                if not key.startswith(f"control/{task.session_id}/{result.id}/"):
                    raise RelayRefused("bad_call", f"{key} is not where result {result.id} is written")
                info = _stat(key)
            if info.sha256 != body.get("sha256") or info.size != body.get("size"):
                raise RelayRefused(
                    "digest_mismatch", f"the store holds {info.size} bytes of sha256 {info.sha256} under {key}"
                )
            result.status, result.store_key, result.completed_at = R.RESULT_STATUS_COMPLETED, key, timezone.now()
            result.sha256, result.size = info.sha256, info.size
            result.save(update_fields=["status", "store_key", "completed_at", "sha256", "size"])
            engine.complete_results(task.session_id, [result.id])
    except RelayRefused:
        if inline and key:  # refused after all: nothing of it stays
            with contextlib.suppress(ObjectNotFound):
                get_store().delete(key)
        raise
    return {}


def _inline_data(body: dict[str, Any]) -> bytes:
    try:
        data = base64.b64decode(str(body["data_b64"]), validate=True)
    except ValueError:
        raise RelayRefused("bad_call", "data_b64 is not base64") from None
    if len(data) > INLINE_BYTES:
        raise RelayRefused("bad_call", f"inline data is at most {INLINE_BYTES} bytes: send more through control.put")
    return data


def _stat(key: str) -> Any:
    try:
        return get_store().stat(key)
    except ObjectNotFound:
        raise RelayRefused("no_data", f"nothing was stored under {key}") from None


def _when(body: dict[str, Any], name: str) -> dt.datetime | None:
    value = (body.get("times") or {}).get(name)
    return dt.datetime.fromtimestamp(value, dt.UTC) if isinstance(value, int | float) else None


@relay.register("control.done")
def _done(job: Job, call: Any) -> dict[str, Any]:
    status = call.body.get("status")
    message = str(call.body.get("message", ""))[:1000]
    with transaction.atomic():
        task = _running(job, call.body, lock=True)
        for name in TIMES:
            setattr(task, name, _when(call.body, name) or getattr(task, name))
        task.owner_pod_id, task.pod_hostname = str(job.miner_hotkey or "")[:128], str(job.miner_hotkey or "")[:256]
        if status == "infra":
            fault(task, message or "a grid fault")
        elif status == "completed":
            _completed(task, call.body.get("children") or [])
        elif status in ENDINGS:
            _failed(task, ENDINGS[status], message)
        else:
            raise RelayRefused("bad_call", f"status must be completed, error, timeout or infra, not {status!r}")
    return {}


def _completed(task: ControlTask, children: list[Any]) -> None:
    creations = [_child(task, c) for c in children]
    delegated = {r for c in creations for r in c.expected_output_ids}
    unwritten = list(
        ControlResult.objects.filter(id__in=task.expected_output_ids, status=R.RESULT_STATUS_CREATED)
        .exclude(id__in=delegated)
        .values_list("id", flat=True)
    )
    if unwritten:
        _failed(task, T.TASK_STATUS_ERROR, f"the task ended without writing its expected output {unwritten[0]}")
        return
    if creations:
        session = ControlSession.objects.select_for_update().get(id=task.session_id)
        if session.status not in (S.SESSION_STATUS_RUNNING, S.SESSION_STATUS_PAUSED) or not session.worker_submission:
            _failed(
                task,
                T.TASK_STATUS_ERROR,
                f"session {session.id} takes no tasks from workers now: its children were not submitted",
            )
            return
        try:
            with transaction.atomic():
                engine.submit(session, creations, created_by=task.id, parent_task_ids=[task.id, *task.parent_task_ids])
        except engine.Refused as exc:
            _failed(task, T.TASK_STATUS_ERROR, f"its children were refused: {exc.message}")
            return
    _end(task, T.TASK_STATUS_COMPLETED, "")


def _child(parent: ControlTask, body: Any) -> engine.Creation:
    if not isinstance(body, dict):
        raise RelayRefused("bad_call", "a child task is an object")
    base = objects_pb2.TaskOptions.FromString(bytes(parent.options))
    try:
        own = objects_pb2.TaskOptions.FromString(base64.b64decode(body.get("options") or ""))
        task_id = str(uuid.UUID(str(body.get("task_id"))))
    except (ValueError, TypeError) as exc:
        raise RelayRefused("bad_call", f"a child task's id or options cannot be read: {exc}") from None
    options = engine.merged_options(base, own)
    return engine.Creation(
        payload_id=str(body.get("payload_id") or ""),
        data_dependencies=[str(r) for r in body.get("data_dependencies") or []],
        expected_output_ids=[str(r) for r in body.get("expected_output_ids") or []],
        options=options,
        task_id=task_id,
    )


def _end(task: ControlTask, status: int, message: str) -> None:
    engine.end(task, status, message)
    task.processed_at = task.processed_at or task.ended_at
    task.save()
    events.record(task.session_id, [events.task_status(task.id, status)])


def _failed(task: ControlTask, status: int, message: str) -> None:
    _end(task, status, message)
    engine.abort_results(task.session_id, task.expected_output_ids, f"task {task.id} failed: {message}")


def fail(task: ControlTask, why: str) -> None:
    """``task`` ends in error, its outputs aborted, and what waits on them (sync, in a transaction)."""
    _failed(task, T.TASK_STATUS_ERROR, why)


def fault(task: ControlTask, why: str) -> None:
    """A grid fault ended ``task``'s attempt: a new task takes over, or, retries spent, an error (sync)."""
    options = objects_pb2.TaskOptions.FromString(bytes(task.options))
    if len(task.retry_of_ids) >= options.max_retries:
        _failed(task, T.TASK_STATUS_ERROR, f"{why}; no retries left (max_retries {options.max_retries})")
        return
    retry = ControlTask(
        id=str(uuid.uuid4()),
        session_id=task.session_id,
        status=T.TASK_STATUS_SUBMITTED,
        options=task.options,
        partition_id=task.partition_id,
        priority=task.priority,
        payload_id=task.payload_id,
        data_dependencies=task.data_dependencies,
        expected_output_ids=task.expected_output_ids,
        parent_task_ids=task.parent_task_ids,
        retry_of_ids=[*task.retry_of_ids, task.id],
        initial_task_id=task.initial_task_id,
        created_by=task.created_by,
        created_at=timezone.now(),
        submitted_at=timezone.now(),
        submission_id=task.submission_id,  # what the client asked for, still
        creation=task.creation,
    )
    retry.save()
    ControlResult.objects.filter(id__in=task.expected_output_ids).update(owner_task_id=retry.id)
    _end(task, T.TASK_STATUS_RETRIED, f"{why}; retried as task {retry.id}")
    events.record(
        task.session_id,
        [events.new_task(retry), *(events.owner_update(r, task.id, retry.id) for r in task.expected_output_ids)],
    )
    dispatch.soon()
