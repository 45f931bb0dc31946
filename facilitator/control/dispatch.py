"""Queued tasks onto the chain: batches of one session's tasks become jobs the facilitator signs.

When a transaction queues tasks (submitted, or made ready by a completed result), :func:`soon`
asks for a dispatch once it commits. :func:`dispatch_queued` claims the queued tasks
(``submitted`` → ``dispatched``, with the job's id), groups them by session, partition and worker,
and makes each group one or more **batch jobs**: a job spec whose ``tasks`` lists them, run by the
worker the tasks' options name (``options["command"]``, and ``options["image"]`` for the docker
runtime), on the partition's executor class. The facilitator signs those jobs with its own key:
they travel the chain as any job (facilitator → validator → miner → executor), routed by class.
A group is split over the class's free executors, at most ``GRID_CONTROL_BATCH_TASKS`` a job.

The executor runs a batch through one worker (executor/taskgraph); each task reports its end
through the relayed calls of :mod:`facilitator.control.agent_calls`. A batch job that ends with
tasks that never reported is a grid fault for them (:func:`job_ended`): each is retried.
``GRID_CONTROL_DISPATCH=0`` keeps tasks queued (a facilitator that drains, or stores graphs only).
A periodic sweep (``facilitator.tasks.dispatch_queued_tasks``, every ``GRID_CONTROL_DISPATCH_SWEEP_S``)
takes what a failed dispatch or a restart left queued.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import shlex
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from facilitator import jobs
from facilitator.control import partitions
from facilitator.control.models import ControlResult, ControlSubmission, ControlTask
from facilitator.storage import ObjectNotFound, get_store
from node.identity import own_keypair
from protocol.armonik_api.protos import objects_pb2, result_status_pb2, task_status_pb2
from protocol.spec import (
    BATCH_DATA_BYTES,
    INLINE_RESULT_BYTES,
    InlineResult,
    JobSpec,
    SubmissionProof,
    TaskAssignment,
    TaskBatch,
    sign_job,
)

__all__ = ["dispatch_queued", "job_ended", "soon", "worker_command"]

log = logging.getLogger("grid.control.dispatch")

T = task_status_pb2.TaskStatus
R = result_status_pb2.ResultStatus
SUBMITTED, DISPATCHED = T.TASK_STATUS_SUBMITTED, T.TASK_STATUS_DISPATCHED
WORKER_START_S = 60.0
DEFAULT_TASK_S = 3600.0
MAX_JOB_S = 86400.0


class NoWorker(ValueError):
    """A task's options name no worker program (``options["command"]``), or one that cannot be read."""


def worker_command(options: objects_pb2.TaskOptions) -> list[str]:
    """The worker program a task's options name: ``options["command"]``, a JSON array or shell words."""
    text = options.options.get("command", "").strip()
    if not text:
        raise NoWorker('a task needs its worker program: set options["command"] in its options or the session\'s')
    try:
        command = json.loads(text) if text.startswith("[") else shlex.split(text)
    except ValueError as exc:
        raise NoWorker(f'options["command"] is neither a JSON array of strings nor shell words: {exc}') from None
    if not command or not all(isinstance(arg, str) and arg for arg in command):
        raise NoWorker('options["command"] must name a program and its arguments, as strings')
    return command


def soon() -> None:
    """Dispatch queued tasks once the current transaction commits (a no-op when dispatch is off)."""
    if settings.GRID_CONTROL_DISPATCH:
        transaction.on_commit(_dispatch_quietly)


def _dispatch_quietly() -> None:
    try:
        dispatch_queued()
    except Exception:  # the tasks stay queued: the next dispatch (or the periodic one) takes them
        log.exception("dispatching queued tasks failed")


def dispatch_queued(limit: int = 10_000, *, send: bool = True) -> int:
    """Claim the queued tasks and send them out as batch jobs; how many were dispatched (sync).

    ``send=False`` (the periodic sweep, on a thread of its own) gives the jobs to no validator: the
    next redelivery round of a connected validator takes them (``FACILITATOR_REDELIVER_S``).
    """
    queued = list(
        ControlTask.objects.filter(status=SUBMITTED)
        .order_by("-priority", "submitted_at", "id")
        .values_list("id", "session_id", "partition_id", "options")[:limit]
    )
    groups: dict[tuple[str, str, bytes], list[str]] = {}
    for task_id, session_id, partition_id, options in queued:
        groups.setdefault((session_id, partition_id, _worker_key(bytes(options))), []).append(task_id)
    offered = partitions.offered()
    sent = 0
    for (session_id, partition_id, _), task_ids in groups.items():
        offer = offered.get(partition_id)
        share = max(1, offer.free if offer else 1)
        size = max(1, min(settings.GRID_CONTROL_BATCH_TASKS, math.ceil(len(task_ids) / share)))
        for start in range(0, len(task_ids), size):
            sent += _send_batch(session_id, partition_id, task_ids[start : start + size], offer, send)
    return sent


def _worker_key(options: bytes) -> bytes:
    parsed = objects_pb2.TaskOptions.FromString(options)
    return json.dumps([parsed.options.get("command", ""), parsed.options.get("image", "")]).encode()


def _send_batch(
    session_id: str, partition_id: str, task_ids: list[str], offer: partitions.Partition | None, send: bool
) -> int:
    job_id = str(uuid.uuid4())
    with transaction.atomic():
        claimed = ControlTask.objects.filter(id__in=task_ids, status=SUBMITTED).update(status=DISPATCHED, job_id=job_id)
        if not claimed:
            return 0  # another dispatch took them
        tasks = list(
            ControlTask.objects.filter(job_id=job_id)
            .select_related("session")
            .order_by("-priority", "submitted_at", "id")
        )
        from facilitator.control import events  # events import the services' field readers

        try:
            spec = _batch_spec(session_id, partition_id, tasks, offer)
        except NoWorker as exc:  # fails at once: no executor could ever run them
            from facilitator.control import agent_calls

            for task in tasks:
                agent_calls.fail(task, str(exc))
            return 0
        events.record(session_id, [events.task_status(t.id, DISPATCHED) for t in tasks])
        keypair = own_keypair()
        validator = jobs.choose_presence() if send else None
        job, _ = jobs.create_job(keypair.hotkey, job_id, spec, sign_job(keypair, job_id, spec), validator)
    if validator is not None:
        async_to_sync(get_channel_layer().send)(validator.channel_name, jobs.dispatch_event(job))
    log.info("dispatched %d task(s) of session %s as job %s", len(tasks), session_id, job_id)
    return len(tasks)


def _batch_spec(
    session_id: str, partition_id: str, tasks: list[ControlTask], offer: partitions.Partition | None
) -> dict[str, Any]:
    options = objects_pb2.TaskOptions.FromString(bytes(tasks[0].options))
    seconds = sum(_max_duration(t) for t in tasks)
    memory = int((offer.spec if offer else {}).get("memory_mb", 2048))
    spec = JobSpec(
        executor_class=partition_id,
        image=options.options.get("image") or None,
        command=worker_command(options),
        timing={"execution": min(MAX_JOB_S, seconds + WORKER_START_S)},
        limits={"memory_mb": memory, "cpu": float((offer.spec if offer else {}).get("cpu", 1.0)), "pids": 256},
        max_attempts=1,  # the control plane retries the tasks themselves, as new tasks
        tasks=TaskBatch(
            session_id=session_id,
            client_hotkey=tasks[0].session.client_hotkey,
            tasks=[
                TaskAssignment(
                    task_id=t.id,
                    payload_id=t.payload_id,
                    data_dependencies=t.data_dependencies,
                    expected_output_ids=t.expected_output_ids,
                    options=base64.b64encode(bytes(t.options)).decode(),
                    submission=str(t.submission_id) if t.submission_id else None,
                    creation=t.creation,
                    created_by=t.created_by,
                )
                for t in tasks
            ],
            submissions={
                str(proof.pk): SubmissionProof(
                    signature=proof.signature, body_b64=base64.b64encode(bytes(proof.body)).decode()
                )
                for proof in ControlSubmission.objects.filter(
                    id__in={t.submission_id for t in tasks if t.submission_id}
                )
            },
            data=_small_inputs(tasks),
        ),
    )
    return spec.to_wire()


def _small_inputs(tasks: list[ControlTask]) -> dict[str, InlineResult]:
    """The tasks' completed inputs small enough to travel in the batch: each one a call fewer."""
    wanted = sorted({r for t in tasks for r in (t.payload_id, *t.data_dependencies)})
    carried: dict[str, InlineResult] = {}
    total = 0
    store = get_store()
    for start in range(0, len(wanted), 500):  # within any database's limit on a statement's parameters
        found = ControlResult.objects.filter(
            id__in=wanted[start : start + 500], status=R.RESULT_STATUS_COMPLETED, size__lte=INLINE_RESULT_BYTES
        ).exclude(store_key="")
        for result_id, key, sha256, size in found.values_list("id", "store_key", "sha256", "size"):
            if total + size > BATCH_DATA_BYTES:
                return carried
            try:
                data = store.read(key)
            except ObjectNotFound:  # deleted since: the task's fetch will say so
                continue
            carried[result_id] = InlineResult(sha256=sha256, data_b64=base64.b64encode(data).decode())
            total += size
    return carried


def _max_duration(task: ControlTask) -> float:
    limit = objects_pb2.TaskOptions.FromString(bytes(task.options)).max_duration.ToTimedelta().total_seconds()
    return limit or DEFAULT_TASK_S


def job_ended(ended: list[tuple[str, str]]) -> None:
    """Batch jobs that ended: their tasks that did not report an end are grid faults (retried).

    Only the facilitator's own jobs are looked at: a client's job costs no statement here.
    """
    from facilitator.control import agent_calls  # they build on this module

    own = own_keypair().hotkey
    job_ids = [job_id for job_id, client in ended if client == own]
    if not job_ids:
        return
    stranded = list(ControlTask.objects.filter(job_id__in=job_ids, status=DISPATCHED))
    for task in stranded:
        agent_calls.fault(task, "its executor's job ended before the task did")


jobs.JOB_END_HOOKS.append(job_ended)
