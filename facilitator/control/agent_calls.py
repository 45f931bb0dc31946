"""The agent's calls, relayed up the chain from the executor running a batch job (facilitator/relay.py).

Every call names a task; it is served only if that task is one of the calling job's and still
running (``dispatched``): the relay has already checked that the job is assigned to the validator
that relayed it, and that the attempt is the job's current one. So a worker acts only for the
task its executor runs now.

- ``control.fetch`` {task_id, result_id}: a completed result of the session: its data inline when
  small (``INLINE_RESULT_BYTES``), else a signed GET URL; with its sha256 and size either way;
- ``control.create`` {task_id, names}: new results of the session, created and owned by the task;
- ``control.put`` {task_id, result_id}: a write-once PUT URL for a result the task may write;
- ``control.done`` {ends: [{task_id, status, message, times, outputs, children}]}: tasks ended,
  one or many (the executor sends the ends queued while its previous call was answered), each
  taken or refused on its own (answered ``{refused: {task_id: why}}``: a task cancelled or retried
  meanwhile). ``completed`` completes the task's ``outputs`` ({result_id, sha256, size} and the
  small data inline as ``data_b64``, stored here, or the ``key`` it was PUT under; every digest
  checked against the store's), wakes what waits on them, then submits its children (held by the
  executor until then; they may take over the task's outputs); every expected output must be
  written or delegated, or the task fails and none of that stays. ``error`` and ``timeout``
  abort its outputs and the results it created; ``infra`` is a grid fault: :func:`fault`. As in
  ArmoniK, a task's results complete when it does: a failed task leaves none of its data behind.
  A call with a malformed end is refused whole (``bad_call``) and changes nothing.

A grid fault retries the task as a new task (``retry_of_ids`` names the ones before it) that
takes over its outputs, up to its ``max_retries``; after that it is an error.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass
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
from protocol.spec import BATCH_DATA_BYTES, INLINE_RESULT_BYTES

__all__ = ["fail", "fault"]

T = task_status_pb2.TaskStatus
R = result_status_pb2.ResultStatus
S = session_status_pb2.SessionStatus
URL_S = 3600
ENDINGS = {"completed": T.TASK_STATUS_COMPLETED, "error": T.TASK_STATUS_ERROR, "timeout": T.TASK_STATUS_TIMEOUT}
MAX_OUTPUTS = 10_000
MAX_ENDS = 1000  # task ends in one control.done
END_FIELDS = ["status", "status_message", "output_error", "ended_at", "processed_at", "owner_pod_id", "pod_hostname",
              "received_at", "acquired_at", "fetched_at", "started_at"]  # fmt: skip
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
    if result.size <= INLINE_RESULT_BYTES:
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


@dataclass(frozen=True)
class _Output:
    """An output the task wrote, as its end reports it: small data inline, or the store key it was PUT under."""

    result_id: str
    sha256: str
    size: int
    data: bytes | None
    key: str


class _Unfit(Exception):
    """The task's reported end does not hold (an output it may not write, a digest the store denies):
    it fails with this message instead, and nothing of its outputs stays."""


def _outputs(body: dict[str, Any]) -> list[_Output]:
    listed = body.get("outputs") or []
    if not isinstance(listed, list) or len(listed) > MAX_OUTPUTS:
        raise RelayRefused("bad_call", f"outputs must be a list of at most {MAX_OUTPUTS}")
    outputs, inline = [], 0
    for entry in listed:
        if not isinstance(entry, dict) or not isinstance(entry.get("size"), int) or entry["size"] < 0:
            raise RelayRefused("bad_call", "an output is an object with result_id, sha256, size, data_b64 or key")
        sha256 = _text(entry, "sha256")
        data = None
        if "data_b64" in entry:
            try:
                data = base64.b64decode(str(entry["data_b64"]), validate=True)
            except ValueError:
                raise RelayRefused("bad_call", "data_b64 is not base64") from None
            inline += len(data)
            if len(data) > INLINE_RESULT_BYTES or inline > BATCH_DATA_BYTES:
                raise RelayRefused(
                    "bad_call",
                    f"inline outputs are at most {INLINE_RESULT_BYTES} bytes each and {BATCH_DATA_BYTES} in all:"
                    " send more through control.put",
                )
        key = "" if data is not None else _text(entry, "key", longest=1024)
        outputs.append(_Output(_text(entry, "result_id"), sha256, entry["size"], data, key))
    return outputs


def _checked_outputs(
    task: ControlTask, outputs: list[_Output], rows: dict[str, ControlResult], claimed: set[str], written: list[str]
) -> list[tuple[str, str, Any]]:
    """Store the inline outputs (their keys appended to ``written``) and check every digest against
    the store's: (result id, key, the store's info) each, nothing written to the database yet.
    ``rows`` are the results (locked), ``claimed`` those another end of the same call wrote."""
    ids = [o.result_id for o in outputs]
    if len(set(ids)) != len(ids) or claimed & set(ids):
        raise _Unfit("the task reported one output twice")
    store, checked = get_store(), []
    for output in outputs:
        result = rows.get(output.result_id)
        if result is None:
            raise _Unfit(f"no result {output.result_id} in session {task.session_id}")
        try:
            _writable(task, result)
        except RelayRefused as exc:
            raise _Unfit(exc.message) from None
        if output.data is not None:  # stored here, under a key of its own, as a PUT URL's would be
            key = upload_key(task.session_id, result.id)
            info = store.put(key, output.data, overwrite=False)
            written.append(key)
        else:
            key = output.key
            if not key.startswith(f"control/{task.session_id}/{result.id}/"):
                raise _Unfit(f"{key} is not where result {result.id} is written")
            try:
                info = store.stat(key)
            except ObjectNotFound:
                raise _Unfit(f"nothing was stored under {key} for result {result.id}") from None
        if info.sha256 != output.sha256 or info.size != output.size:
            raise _Unfit(f"result {result.id}: the store holds {info.size} bytes of sha256 {info.sha256} under {key}")
        checked.append((result.id, key, info))
    claimed.update(ids)
    return checked


def _result_rows(session_id: str, ends: list[_End]) -> dict[str, ControlResult]:
    ids = [o.result_id for end in ends for o in end.outputs]
    found = ControlResult.objects.select_for_update().filter(session_id=session_id, id__in=ids) if ids else []
    return {r.id: r for r in found}


def _when(body: dict[str, Any], name: str) -> dt.datetime | None:
    value = (body.get("times") or {}).get(name)
    return dt.datetime.fromtimestamp(value, dt.UTC) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class _End:
    """One task's end, as its executor reports it."""

    task_id: str
    status: str
    message: str
    times: dict[str, dt.datetime]
    outputs: list[_Output]
    children: list[Any]


def _ends(body: dict[str, Any]) -> list[_End]:
    listed = body.get("ends")
    if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_ENDS:
        raise RelayRefused("bad_call", f"ends must be a list of 1 to {MAX_ENDS} task ends")
    ends = []
    for entry in listed:
        if not isinstance(entry, dict):
            raise RelayRefused("bad_call", "a task's end is an object")
        status = entry.get("status")
        if status not in (*ENDINGS, "infra"):
            raise RelayRefused("bad_call", f"status must be completed, error, timeout or infra, not {status!r}")
        children = entry.get("children") or []
        if not isinstance(children, list):
            raise RelayRefused("bad_call", "children must be a list")
        times = {name: when for name in TIMES if (when := _when(entry, name)) is not None}
        outputs = _outputs(entry) if status == "completed" else []
        message = str(entry.get("message", ""))[:1000]
        ends.append(_End(_text(entry, "task_id"), status, message, times, outputs, children))
    if sum(len(o.data or b"") for end in ends for o in end.outputs) > BATCH_DATA_BYTES:
        raise RelayRefused("bad_call", f"inline outputs are at most {BATCH_DATA_BYTES} bytes a call")
    return ends


@relay.register("control.done")
def _done(job: Job, call: Any) -> dict[str, Any]:
    """Task ends, several a call: each one taken or refused on its own ({"refused": {task id: why}})."""
    ends = _ends(call.body)
    refused: dict[str, str] = {}
    with transaction.atomic():
        named = ControlTask.objects.select_for_update().filter(id__in=[e.task_id for e in ends], job_id=str(job.id))
        tasks = {t.id: t for t in named}
        plain: list[tuple[ControlTask, _End]] = []  # completed without children: taken together
        for end in ends:
            task = tasks.pop(end.task_id, None)  # popped: a second end of one task is refused
            if task is None or task.status != T.TASK_STATUS_DISPATCHED:
                refused[end.task_id] = (
                    f"task_over: task {end.task_id} is {T.Name(task.status).removeprefix('TASK_STATUS_').lower()}"
                    if task is not None
                    else f"unknown_task: task {end.task_id} is not one of job {job.id}'s, or ended twice in a call"
                )
                continue
            for name, when in end.times.items():
                setattr(task, name, when)
            task.owner_pod_id, task.pod_hostname = str(job.miner_hotkey)[:128], str(job.miner_hotkey)[:256]
            if end.status == "completed" and not end.children:
                plain.append((task, end))
            elif end.status == "completed":
                rows = _result_rows(task.session_id, [end])
                _completed(task, end.outputs, rows, end.children)
            elif end.status == "infra":
                fault(task, end.message or "a grid fault")
            else:
                _failed(task, ENDINGS[end.status], end.message)
        if plain:
            _completed_together(plain)
    return {"refused": refused}


def _completed_together(plain: list[tuple[ControlTask, _End]]) -> None:
    """Completed ends without children, of one session: checked one by one, written together (one
    wake-up of what waits on their outputs, one numbering of their events, one update of the tasks)."""
    session_id = plain[0][0].session_id
    rows, claimed = _result_rows(session_id, [end for _, end in plain]), set()
    good: list[ControlTask] = []
    checked: list[tuple[str, str, Any]] = []
    for task, end in plain:
        written: list[str] = []
        try:
            mine = _checked_outputs(task, end.outputs, rows, claimed, written)
            _all_written(task, {result_id for result_id, _, _ in mine}, [])
        except _Unfit as exc:
            _forget(written)
            _failed(task, T.TASK_STATUS_ERROR, str(exc))
            continue
        good.append(task)
        checked += mine
    if not good:
        return
    recorded: list[events.Change] = []
    _complete(session_id, checked, recorded)
    for task in good:
        engine.end(task, T.TASK_STATUS_COMPLETED, "")
        task.processed_at = task.processed_at or task.ended_at
    ControlTask.objects.bulk_update(good, END_FIELDS, batch_size=500)
    events.record(session_id, [*recorded, *(events.task_status(t.id, T.TASK_STATUS_COMPLETED) for t in good)])


def _all_written(task: ControlTask, done: set[str], creations: list[engine.Creation]) -> None:
    delegated = {r for c in creations for r in c.expected_output_ids}
    unwritten = [r for r in task.expected_output_ids if r not in delegated and r not in done]
    if unwritten:
        raise _Unfit(f"the task ended without writing its expected output {unwritten[0]}")


def _complete(session_id: str, checked: list[tuple[str, str, Any]], recorded: list[events.Change]) -> None:
    now = timezone.now()
    for result_id, key, info in checked:  # one UPDATE each: cheaper than bulk_update's CASE for a few
        ControlResult.objects.filter(id=result_id).update(
            status=R.RESULT_STATUS_COMPLETED, store_key=key, completed_at=now, sha256=info.sha256, size=info.size
        )
    engine.complete_results(session_id, [result_id for result_id, _, _ in checked], into=recorded)


def _forget(keys: list[str]) -> None:
    for key in keys:  # refused after all: nothing of it stays
        with contextlib.suppress(ObjectNotFound):
            get_store().delete(key)


def _completed(task: ControlTask, outputs: list[_Output], rows: dict[str, ControlResult], children: list[Any]) -> None:
    """The task's outputs complete, what waits on them moves on, then its children are submitted
    (they may need those outputs, or take over the ones it did not write); or it fails, and none
    of that stays."""
    written: list[str] = []
    recorded: list[events.Change] = []  # the change's events, numbered together with the task's own end
    try:
        creations = [_child(task, c) for c in children]
        checked = _checked_outputs(task, outputs, rows, set(), written)
        _all_written(task, {result_id for result_id, _, _ in checked}, creations)
        with transaction.atomic():  # children may be refused after the outputs completed: none of it stays
            _complete(task.session_id, checked, recorded)
            _submit_children(task, creations)
    except BaseException as exc:
        _forget(written)
        if not isinstance(exc, _Unfit):
            raise
        _failed(task, T.TASK_STATUS_ERROR, str(exc))
        return
    _end(task, T.TASK_STATUS_COMPLETED, "", recorded)


def _submit_children(task: ControlTask, creations: list[engine.Creation]) -> None:
    session = ControlSession.objects.select_for_update().get(id=task.session_id)
    if session.status not in (S.SESSION_STATUS_RUNNING, S.SESSION_STATUS_PAUSED) or not session.worker_submission:
        raise _Unfit(f"session {session.id} takes no tasks from workers now: its children were not submitted")
    try:
        engine.submit(session, creations, created_by=task.id, parent_task_ids=[task.id, *task.parent_task_ids])
    except engine.Refused as exc:
        raise _Unfit(f"its children were refused: {exc.message}") from None


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


def _end(task: ControlTask, status: int, message: str, recorded: list[events.Change] | None = None) -> None:
    engine.end(task, status, message)
    task.processed_at = task.processed_at or task.ended_at
    task.save()
    events.record(task.session_id, [*(recorded or []), events.task_status(task.id, status)])


def _failed(task: ControlTask, status: int, message: str) -> None:
    _end(task, status, message)
    why = f"task {task.id} failed: {message}"
    engine.abort_results(task.session_id, [*task.expected_output_ids, *_made_by(task)], why)


def _made_by(task: ControlTask) -> list[str]:
    """The results ``task`` created that no end of it completed: nobody else can ever write them."""
    made = ControlResult.objects.filter(session_id=task.session_id, created_by=task.id, status=R.RESULT_STATUS_CREATED)
    return list(made.values_list("id", flat=True))


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
    engine.abort_results(task.session_id, _made_by(task), f"task {task.id} was retried as task {retry.id}")
    events.record(
        task.session_id,
        [events.new_task(retry), *(events.owner_update(r, task.id, retry.id) for r in task.expected_output_ids)],
    )
    dispatch.soon()
