"""What happens to a job on the facilitator: creation, dispatch, status updates, cancellation.

Plain synchronous functions over the models; the REST views call them directly and the
consumers through ``database_sync_to_async``. Pushing to websockets goes over the channel layer:
``job.<id>`` groups reach the clients watching a job, a validator's channel reaches its connection.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from facilitator.links import check_object_inputs, link_plan, links_for
from facilitator.models import Job, JobEvent, ValidatorPresence
from facilitator.registry import get_registry
from facilitator.validator_choice import choose_validator
from node import sql
from protocol.errors import SpecError
from protocol.messages import JobContext, JobFailure, JobNew, JobStatusUpdate
from protocol.spec import parse_spec, verify_job
from protocol.status import JobState, JobStatus, fold, is_final

__all__ = [
    "JobConflict",
    "apply_status",
    "apply_statuses",
    "cancel_job",
    "choose_presence",
    "create_job",
    "dispatch",
    "dispatch_event",
    "event_for_clients",
    "event_group",
    "is_final",
    "is_job_id",
    "job_new_message",
    "push_event",
    "record_status",
    "sent_update",
    "take_job",
]

log = logging.getLogger("grid.facilitator")


class JobConflict(Exception):
    """A job id reused for a different job, or a transition the job's state does not allow."""


def is_job_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def event_group(job_id: object) -> str:
    return f"job.{job_id}"


def create_job(
    client_hotkey: str, job_id: str, spec: dict[str, Any], signature: str, validator: ValidatorPresence | None = None
) -> tuple[Job, bool]:
    """Validate and store a signed job; return it and whether it is new.

    A repeat of the very same signed job returns the stored one (a safe retry). With a
    ``validator`` (from :func:`choose_presence`), a new job is stored already given to it: the
    caller then sends it the :func:`dispatch_event`.

    Raises:
        SpecError: the spec does not validate.
        SignatureError: the client did not sign exactly this job.
        InputError: an object input is not the client's or not in the store (a ``SpecError``).
        JobConflict: the id belongs to a different job.
    """
    parsed = parse_spec(spec)
    verify_job(client_hotkey, job_id, spec, signature)
    check_object_inputs(client_hotkey, parsed)
    now = timezone.now()
    job = Job(id=job_id, client_hotkey=client_hotkey, spec=spec, client_signature=signature, created_at=now)
    if validator is not None:
        job.validator_hotkey, job.dispatched_at = validator.hotkey, now
    try:
        with transaction.atomic():
            # Plain inserts: the ORM's compiling cost more than the statements, on every job.
            sql.insert(job)
            # A new job has no history to check against: its first event is written as it is.
            sql.insert(_event(job, sent_update(job)))
    except IntegrityError:
        existing = Job.objects.filter(id=job_id).first()
        if existing is not None and existing.client_hotkey == client_hotkey and existing.client_signature == signature:
            return existing, False
        raise JobConflict(f"job id {job_id} is already taken") from None
    link_plan(job, parsed)  # parsed here, at intake: its dispatches and redeliveries parse it no more
    return job, True


def take_job(
    client_hotkey: str, job_id: str, spec: dict[str, Any], signature: str
) -> tuple[Job, bool, tuple[str, dict[str, Any]] | None]:
    """:func:`create_job` given to a connected validator, for both ways a client submits (REST
    and the event stream's ``job.create``): the job, whether it is new, and the channel send
    (validator channel, :func:`dispatch_event`) a new job still needs, if a validator took it.

    Raises what :func:`create_job` raises; ``SpecError`` for a job with ``tasks`` (the control plane's own).
    """
    if isinstance(spec, dict) and spec.get("tasks") is not None:
        raise SpecError("a client's job cannot carry tasks: submit them to the control plane (docs/control-plane.md)")
    validator = choose_presence()
    job, created = create_job(client_hotkey, job_id, spec, signature, validator)
    routed = (validator.channel_name, dispatch_event(job)) if created and validator is not None else None
    return job, created, routed


def sent_update(job: Job) -> JobStatusUpdate:
    """A job's first status, ``sent``, dated when the facilitator stored it."""
    return JobStatusUpdate(job_id=str(job.id), status=JobStatus.SENT, attempt=1, at=job.created_at.timestamp())


def job_new_message(job: Job) -> JobNew:
    """The ``job.new`` frame of ``job``, with its context (freshly signed store links) beside its signed spec."""
    return JobNew(
        job_id=str(job.id),
        spec=job.spec,
        client_hotkey=job.client_hotkey,
        client_signature=job.client_signature,
        context=JobContext(links=links_for(job)),
    )


def dispatch(job: Job) -> bool:
    """Hand ``job`` to a connected validator; ``False`` if none is connected (it waits)."""
    presence = choose_presence(job.validator_hotkey)
    if presence is None:
        return False
    Job.objects.filter(id=job.id).update(validator_hotkey=presence.hotkey, dispatched_at=timezone.now())
    job.validator_hotkey = presence.hotkey
    async_to_sync(get_channel_layer().send)(presence.channel_name, dispatch_event(job))
    return True


def choose_presence(pinned: str = "") -> ValidatorPresence | None:
    """The connected validator a job goes to (only ``pinned``, if given); ``None`` if none can take it."""
    candidates = [
        ValidatorPresence(hotkey=hotkey, channel_name=channel)
        for hotkey, channel in sql.fetch(f"SELECT hotkey, channel_name FROM {sql.table(ValidatorPresence)}", ())
        if not pinned or hotkey == pinned
    ]
    if not candidates:
        return None
    # One candidate (the usual grid) needs no registry read: it was active when it connected.
    # Several: only their entries are read (the registry lists every miner too).
    registry = {p.hotkey: n for p in candidates if (n := get_registry().get(p.hotkey))} if len(candidates) > 1 else {}
    return choose_validator([(p.hotkey, p) for p in candidates], registry)


def dispatch_event(job: Job) -> dict[str, Any]:
    """The channel-layer event that hands ``job`` to its validator's connection.

    The frame travels in the event: the connection sends it without a database trip.
    """
    return {"type": "job.dispatch", "job_id": str(job.id), "frame": job_new_message(job).encode()}


def record_status(job: Job, update: JobStatusUpdate) -> bool:
    """Store one status event; ``False`` if this (attempt, status) was already recorded.

    Called inside the transaction that holds the job's row, so the check cannot race; the
    unique constraint stays as the last line of defence.
    """
    if JobEvent.objects.filter(job_id=job.pk, attempt=update.attempt, status=update.status).exists():
        return False
    _event(job, update).save()
    return True


def apply_status(validator_hotkey: str, update: JobStatusUpdate) -> bool:
    """Apply a validator's status update to its job; ``True`` when it should be pushed to clients.

    Idempotent by (job, attempt, status): a redelivered update changes nothing. A retried
    attempt's ``infra_failed`` (``retrying``) is history, not the job's end. The job's row moves
    as :func:`protocol.status.fold` says, the same rule the SDK's ``Job`` follows.
    """
    with transaction.atomic():
        return _apply(validator_hotkey, update)


def apply_statuses(
    validator_hotkey: str, updates: list[JobStatusUpdate], received: list[str] | None = None
) -> list[JobStatusUpdate]:
    """Apply updates that arrived together, in order, in one transaction; return those to push.

    The whole batch is read and written in a handful of statements (group commit: a job costs
    the same few statements whether its statuses come one by one or together). Should that fail,
    the batch is applied again update by update, each in its own savepoint, so that one that
    fails does not undo the others. The jobs this validator said it received (``job.received``)
    or sent a status of are marked delivered in the same transaction: a status says it has the
    job as well (a validator sends ``job.received`` only for jobs no status of follows).
    """
    delivered = [
        job_id for job_id in dict.fromkeys([*(received or ()), *(u.job_id for u in updates)]) if is_job_id(job_id)
    ]
    try:
        with transaction.atomic():
            mark_delivered(validator_hotkey, delivered)
            clients: dict[str, str] = {}
            pushed = _apply_batch(validator_hotkey, updates, clients) if updates else []
            _ended(pushed, clients)
            return pushed
    except Exception:
        log.warning("a batch of %d statuses failed as a whole; applying them one by one", len(updates), exc_info=True)
    pushed, clients = [], {}
    with transaction.atomic():
        try:
            with transaction.atomic():
                mark_delivered(validator_hotkey, delivered)
        except Exception:
            log.exception("could not mark %d jobs delivered", len(delivered))
        for update in updates:
            try:
                with transaction.atomic():
                    if _apply(validator_hotkey, update, clients):
                        pushed.append(update)
            except Exception:
                log.exception("could not apply %s for job %s", update.status, update.job_id)
        _ended(pushed, clients)
    return pushed


# Called, in the transaction that recorded them, with (job id, client hotkey) of the jobs that just
# ended (the control plane registers here: a batch job's tasks that did not report an end are retried).
JOB_END_HOOKS: list[Callable[[list[tuple[str, str]]], None]] = []


def _ended(pushed: list[JobStatusUpdate], clients: dict[str, str]) -> None:
    ended = [(u.job_id, clients.get(str(uuid.UUID(u.job_id)), "")) for u in pushed if is_final(u)]
    if ended:
        for hook in JOB_END_HOOKS:
            hook(ended)


def mark_delivered(validator_hotkey: str, job_ids: list[str]) -> None:
    """The validator has these jobs: redeliver them no more."""
    if not job_ids:
        return
    now = sql.prep(Job, "delivered_at", timezone.now())
    ids = [sql.prep(Job, "id", job_id) for job_id in job_ids]
    sql.execute(
        f"UPDATE {sql.table(Job)} SET delivered_at = %s"
        f" WHERE id IN ({sql.marks(len(ids))}) AND validator_hotkey = %s AND delivered_at IS NULL",
        [now, *ids, validator_hotkey],
    )


JOB_STATE_FIELDS = ("id", "status", "attempt", "miner_hotkey", "validator_hotkey", "client_hotkey")


def _apply_batch(
    validator_hotkey: str, updates: list[JobStatusUpdate], clients: dict[str, str]
) -> list[JobStatusUpdate]:
    """:func:`_apply` for many updates at once: the same decisions, in order, over rows read together.

    ``clients`` learns the client of each job updated (for :data:`JOB_END_HOOKS`).

    Plain SQL (node/sql.py): the ORM compiling these four statements cost more than running them.
    """
    ids = [sql.prep(Job, "id", job_id) for job_id in {uuid.UUID(update.job_id) for update in updates}]
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    rows = sql.fetch(
        f"SELECT id, status, attempt, miner_hotkey, client_hotkey FROM {sql.table(Job)}"
        f" WHERE id IN ({sql.marks(len(ids))}) AND validator_hotkey = %s{lock}",
        [*ids, validator_hotkey],
    )
    jobs = {}
    for pk, status, attempt, miner, client in rows:
        clients[str(uuid.UUID(str(pk)))] = client
        job = Job(
            id=uuid.UUID(str(pk)), status=status, attempt=attempt, miner_hotkey=miner, validator_hotkey=validator_hotkey
        )
        jobs[job.pk] = job
    seen = {
        (uuid.UUID(str(job_id)), attempt, status)
        for job_id, attempt, status in sql.fetch(
            f"SELECT job_id, attempt, status FROM {sql.table(JobEvent)} WHERE job_id IN ({sql.marks(len(ids))})", ids
        )
    }
    events, changed, pushed = [], {}, []
    for update in updates:
        job = jobs.get(uuid.UUID(update.job_id))
        key = (job.pk if job else None, update.attempt, str(update.status))
        if job is None or job.is_terminal or key in seen:
            continue  # not this validator's, already ended, or already recorded
        seen.add(key)
        events.append(_event_row(job, update))
        fields = _fold_into(job, update)
        if fields:
            changed.setdefault(job.pk, (job, set()))[1].update(fields)
        pushed.append(update)
    sql.execute_many(
        f"INSERT INTO {sql.table(JobEvent)} (job_id, status, attempt, payload, at) VALUES (%s, %s, %s, %s, %s)", events
    )
    now = sql.prep(Job, "updated_at", timezone.now())
    for job, fields in changed.values():
        names = sorted(fields)
        sql.execute(
            f"UPDATE {sql.table(Job)} SET {', '.join(f'{name} = %s' for name in names)}, updated_at = %s WHERE id = %s",
            [*(sql.prep(Job, name, getattr(job, name)) for name in names), now, sql.prep(Job, "id", job.pk)],
        )
    return pushed


def _event_row(job: Job, update: JobStatusUpdate) -> tuple:
    """The values of ``update``'s ``JobEvent`` row, as :func:`_apply_batch` inserts them."""
    payload = sql.prep(JobEvent, "payload", update.model_dump(mode="json"))
    return (sql.prep(Job, "id", job.pk), str(update.status), update.attempt, payload, update.at)


def _event(job: Job, update: JobStatusUpdate) -> JobEvent:
    payload = update.model_dump(mode="json")
    return JobEvent(job_id=job.pk, status=update.status, attempt=update.attempt, payload=payload, at=update.at)


def _fold_into(job: Job, update: JobStatusUpdate) -> list[str]:
    """Move ``job``'s row (in memory) as :func:`protocol.status.fold` says; the fields that changed."""
    before = JobState(status=JobStatus(job.status), attempt=job.attempt, miner=job.miner_hotkey or None)
    after = fold(before, update)
    if after == before:
        return []
    job.status, job.attempt, job.miner_hotkey = after.status, after.attempt, after.miner or ""
    fields = ["status", "attempt", "miner_hotkey"]
    if after.result is not None:
        job.result = after.result.model_dump(mode="json")
        fields.append("result")
    if after.failure is not None:
        job.failure = after.failure.model_dump(mode="json")
        fields.append("failure")
    return fields


def _apply(validator_hotkey: str, update: JobStatusUpdate, clients: dict[str, str] | None = None) -> bool:
    job = (
        Job.objects.select_for_update()
        .only(*JOB_STATE_FIELDS)
        .filter(id=update.job_id, validator_hotkey=validator_hotkey)
        .first()
    )
    if job is None or job.is_terminal:
        # An ended job's history stays as it ended (e.g. a miner finishing after a cancel).
        return False
    if clients is not None:
        clients[str(job.pk)] = job.client_hotkey
    if not record_status(job, update):
        return False
    fields = _fold_into(job, update)
    if fields:
        job.save(update_fields=[*fields, "updated_at"])
    return True


def cancel_job(job: Job, reason: str = "cancelled by client") -> JobStatusUpdate:
    """Mark ``job`` cancelled and tell its validator; the cancellation event is returned to push.

    Raises:
        JobConflict: the job already ended.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(id=job.id)
        if job.is_terminal:
            raise JobConflict(f"job already ended: {job.status}")
        update = JobStatusUpdate(
            job_id=str(job.id),
            status=JobStatus.CANCELLED,
            attempt=job.attempt,
            miner=job.miner_hotkey or None,
            at=time.time(),
            failure=JobFailure(reason="cancelled", message=reason, reported_by="facilitator"),
        )
        record_status(job, update)
        job.status = JobStatus.CANCELLED
        job.failure = update.failure.model_dump(mode="json") if update.failure else None
        job.save()
    presence = ValidatorPresence.objects.filter(hotkey=job.validator_hotkey).first() if job.validator_hotkey else None
    if presence is not None:
        async_to_sync(get_channel_layer().send)(
            presence.channel_name, {"type": "job.cancel", "job_id": str(job.id), "reason": reason}
        )
    return update


def event_for_clients(update: JobStatusUpdate) -> dict[str, Any]:
    """The channel-layer event that carries ``update`` to the clients watching its job."""
    return {"type": "job.event", "frame": update.encode(), "job_id": update.job_id, "final": is_final(update)}


def push_event(update: JobStatusUpdate) -> None:
    async_to_sync(get_channel_layer().group_send)(event_group(update.job_id), event_for_clients(update))
