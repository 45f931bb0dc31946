"""The facilitator's websocket endpoints: validators dial ``/ws/validator/``, clients ``/ws/client/``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection
from django.utils import timezone

from facilitator import jobs, relay, reports, scores
from facilitator.api.errors import job_refusal
from facilitator.models import Job, JobEvent, ValidatorPresence
from facilitator.registry import admits_validator
from node import sql
from node.consumers import AuthenticatedConsumer
from protocol.errors import SignatureError
from protocol.messages import (
    CLIENT_TO_FACILITATOR,
    VALIDATOR_TO_FACILITATOR,
    Capacity,
    Error,
    JobCancel,
    JobCreate,
    JobReceived,
    JobStatusAck,
    JobStatusUpdate,
    JobUnwatch,
    JobWatch,
    RelayCall,
    ReportOutcome,
    Scores,
    StatusKey,
)
from protocol.spec import SpecError
from protocol.status import JobStatus

__all__ = ["ClientEventsConsumer", "ValidatorConsumer"]

log = logging.getLogger("grid.facilitator")

ACK_COALESCE_S = 0.05  # stored statuses are acknowledged together, at most this much later
MAX_ACKS = 10_000  # what one job.status_ack may hold
RECENT_CANCEL_S = 24 * 3600


class ValidatorConsumer(AuthenticatedConsumer):
    """A validator's connection: delivers its jobs (redelivering until acknowledged), takes statuses."""

    role = "validator"
    inbound = VALIDATOR_TO_FACILITATOR
    _flusher: asyncio.Future[None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._statuses: list[JobStatusUpdate] = []
        self._received: list[str] = []  # job.received not yet marked
        self._acks: list[StatusKey] = []  # statuses stored, not yet acknowledged
        self._ack_sender: asyncio.Future[None] | None = None

    async def is_allowed(self, hotkey: str) -> bool:
        return await database_sync_to_async(admits_validator)(hotkey)

    async def authenticated(self) -> None:
        await database_sync_to_async(self._register)()
        self._redeliver_task = asyncio.ensure_future(self._redeliver_loop())
        await self._deliver_waiting(redeliver_after=None)
        # Cancellations made while this validator was away: it may still be running those jobs.
        for job_id in await database_sync_to_async(self._recently_cancelled)():
            await self.send_message(JobCancel(job_id=job_id, reason="cancelled while the validator was away"))
        # Malicious-miner reports it has not judged yet (sent before, or while it was away).
        for message in await database_sync_to_async(reports.pending_for)(str(self.peer_hotkey)):
            await self.send_message(message)

    def _recently_cancelled(self) -> list[str]:
        since = timezone.now() - timedelta(seconds=RECENT_CANCEL_S)
        cancelled = Job.objects.filter(
            validator_hotkey=self.peer_hotkey,
            status=JobStatus.CANCELLED,
            delivered_at__isnull=False,
            updated_at__gte=since,
        ).values_list("id", flat=True)[:1000]
        return [str(job_id) for job_id in cancelled]

    def _register(self) -> None:
        ValidatorPresence.objects.update_or_create(
            hotkey=self.peer_hotkey, defaults={"channel_name": self.channel_name}
        )

    async def _redeliver_loop(self) -> None:
        interval = settings.FACILITATOR_REDELIVER_S
        while True:
            await asyncio.sleep(interval)
            await self._deliver_waiting(redeliver_after=interval)

    async def _deliver_waiting(self, redeliver_after: float | None) -> None:
        """Send every job waiting for this validator (unassigned or not yet acknowledged)."""
        for message in await database_sync_to_async(self._claim_waiting)(redeliver_after):
            await self.send_message(message)

    def _claim_waiting(self, redeliver_after: float | None) -> list:
        waiting = Job.objects.waiting_for(str(self.peer_hotkey)).order_by("created_at")
        if redeliver_after is not None:
            cutoff = timezone.now() - timedelta(seconds=redeliver_after)
            waiting = waiting.exclude(dispatched_at__gt=cutoff)
        claimed = list(waiting[:500])
        if claimed:
            Job.objects.filter(id__in=[job.id for job in claimed]).update(
                validator_hotkey=self.peer_hotkey, dispatched_at=timezone.now()
            )
        return [jobs.job_new_message(job) for job in claimed]

    async def job_dispatch(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["frame"])

    async def report_forward(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["frame"])

    async def job_cancel(self, event: dict[str, Any]) -> None:
        await self.send_message(JobCancel(job_id=event["job_id"], reason=event.get("reason", "cancelled")))

    async def frame_job_received(self, message: JobReceived) -> None:
        if not jobs.is_job_id(message.job_id):
            return  # not one of ours: ids are UUIDs
        # Marked delivered with the next batch of statuses (its "received" status follows anyway).
        self._received.append(message.job_id)
        self._flush_soon()

    async def frame_job_status(self, message: JobStatusUpdate) -> None:
        if not jobs.is_job_id(message.job_id):
            # Like any job that is not this validator's: ignored, and acknowledged so that it
            # is not resent forever.
            await self.send_message(JobStatusAck(statuses=[StatusKey.of(message)]))
            return
        # Updates that arrive while a batch is being stored form the next batch: one thread hop
        # and one transaction for many, in arrival order.
        self._statuses.append(message)
        self._flush_soon()

    async def _send_acks(self) -> None:
        # Nothing waits on an acknowledgement (the validator resends what is unacknowledged only
        # after a reconnect): those of ACK_COALESCE_S go in one frame.
        await asyncio.sleep(ACK_COALESCE_S)
        while self._acks:
            acks, self._acks = self._acks[:MAX_ACKS], self._acks[MAX_ACKS:]
            with contextlib.suppress(Exception):  # gone already: it resends, which is harmless
                await self.send_message(JobStatusAck(statuses=acks))

    def _flush_soon(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_statuses())

    async def _flush_statuses(self) -> None:
        while self._statuses or self._received:
            batch, self._statuses = self._statuses, []
            received, self._received = self._received, []
            try:
                pushed = await database_sync_to_async(jobs.apply_statuses)(str(self.peer_hotkey), batch, received)
            except Exception:
                # Not stored (the database is down or locked): hang up, so that the validator
                # reconnects and resends every status it holds unacknowledged, these included.
                log.exception("could not store %d statuses from validator %s…", len(batch), str(self.peer_hotkey)[:12])
                self._statuses.clear()
                self._received.clear()  # redelivered, then received again: harmless
                with contextlib.suppress(Exception):
                    await self.close(code=1011, reason="statuses not stored; resend")
                return
            # Stored (or already known): the validator may forget them. Only after the commit,
            # so that a facilitator dying before it gets them again.
            self._acks.extend(StatusKey.of(update) for update in batch)
            if self._acks and (self._ack_sender is None or self._ack_sender.done()):
                self._ack_sender = asyncio.ensure_future(self._send_acks())
            for update in pushed:
                try:
                    await self.channel_layer.group_send(jobs.event_group(update.job_id), jobs.event_for_clients(update))
                except Exception as exc:  # the channel layer is down: stored all the same, replayed on watch
                    log.warning("could not push %s of job %s to its watchers: %s", update.status, update.job_id, exc)

    async def frame_relay_call(self, message: RelayCall) -> None:
        """A call from one of this validator's running jobs: answered by its kind's handler (facilitator/relay.py)."""
        await self.send_message(await database_sync_to_async(relay.answer)(str(self.peer_hotkey), message))

    async def frame_scores(self, message: Scores) -> None:
        try:
            await database_sync_to_async(scores.store_scores)(str(self.peer_hotkey), message.sheet)
        except SignatureError as exc:
            await self.send_message(Error(code=exc.code, message=f"score sheet refused: {exc.message}"))

    async def frame_capacity(self, message: Capacity) -> None:
        classes = message.model_dump(mode="json")["classes"]
        await ValidatorPresence.objects.filter(hotkey=self.peer_hotkey, channel_name=self.channel_name).aupdate(
            classes=classes
        )

    async def frame_report_outcome(self, message: ReportOutcome) -> None:
        # Only the validator the report went to decides it, and only once.
        await database_sync_to_async(reports.apply_outcome)(str(self.peer_hotkey), message)

    async def disconnect(self, code: int) -> None:
        if self._flusher is not None:
            await self._flusher  # what the validator sent before leaving is stored, not dropped
        if self._ack_sender is not None:
            self._ack_sender.cancel()  # it resends those after reconnecting: stored already, ignored
            with contextlib.suppress(asyncio.CancelledError):
                await self._ack_sender
        task = getattr(self, "_redeliver_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.peer_hotkey is not None:
            await ValidatorPresence.objects.filter(hotkey=self.peer_hotkey, channel_name=self.channel_name).adelete()


class ClientEventsConsumer(AuthenticatedConsumer):
    """A client's push stream: ``job.watch`` replays a job's history, then every new status follows."""

    role = "client"
    inbound = CLIENT_TO_FACILITATOR
    MAX_WATCHED = 10_000

    async def is_allowed(self, hotkey: str) -> bool:
        allowed = settings.FACILITATOR_CLIENT_HOTKEYS
        return "*" in allowed or hotkey in allowed

    async def authenticated(self) -> None:
        self.watched: set[str] = set()

    async def frame_job_create(self, message: JobCreate) -> None:
        """``POST /api/v1/jobs`` on the stream, the job watched from its first event on."""
        job_id = message.job_id
        refusal = self._create_refusal(message)
        if refusal is not None:
            await self.send_message(Error(code=refusal[0], message=refusal[1], ref=job_id))
            return
        group = jobs.event_group(job_id)
        watching = job_id in self.watched
        if not watching:  # joined before the job exists: its first status cannot slip past
            await self.channel_layer.group_add(group, self.channel_name)
        try:
            job, created, routed = await database_sync_to_async(jobs.take_job)(
                self.peer_hotkey, job_id, message.spec, message.signature
            )
        except (SpecError, SignatureError, jobs.JobConflict) as exc:
            if not watching:
                await self.channel_layer.group_discard(group, self.channel_name)
            code, text, errors = job_refusal(exc)
            await self.send_message(Error(code=code, message=text, ref=job_id, errors=errors[:100] or None))
            return
        if routed is not None:
            await self.channel_layer.send(*routed)
        self.watched.add(job_id)
        if created:
            await self.job_event(jobs.event_for_clients(jobs.sent_update(job)))
        else:  # a repeat: as job.watch would, its whole history
            _, history = await database_sync_to_async(self._own_history)([job_id])
            for payload in history:
                await self.job_event(jobs.event_for_clients(JobStatusUpdate.model_validate(payload)))

    def _create_refusal(self, message: JobCreate) -> tuple[str, str] | None:
        """What the REST create's schema and body limit would refuse before any database work."""
        if not jobs.is_job_id(message.job_id):
            return "invalid_request", f"invalid request: job_id: {message.job_id!r} is not a UUID"
        if message.job_id not in self.watched and len(self.watched) >= self.MAX_WATCHED:
            return "too_many", f"watch at most {self.MAX_WATCHED} jobs"
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and len(message.encode()) > limit:
            return "request_too_large", f"a job.create is limited to {limit} bytes, as a request body is"
        return None

    async def frame_job_watch(self, message: JobWatch) -> None:
        candidates = [job_id for job_id in dict.fromkeys(message.job_ids) if jobs.is_job_id(job_id)]
        if len(self.watched) + len(candidates) > self.MAX_WATCHED:
            await self.send_message(Error(code="too_many", message=f"watch at most {self.MAX_WATCHED} jobs"))
            return
        # Join first, then read: an event in between arrives twice (once in the history), never
        # zero times. Events of a job found not to be the client's are never forwarded: job_event
        # sends only watched jobs' events, and the group is left at once.
        new = [job_id for job_id in candidates if job_id not in self.watched]
        for job_id in new:
            await self.channel_layer.group_add(jobs.event_group(job_id), self.channel_name)
        own, history = await database_sync_to_async(self._own_history)(candidates)
        for job_id in new:
            if job_id not in own:
                await self.channel_layer.group_discard(jobs.event_group(job_id), self.channel_name)
        for job_id in message.job_ids:
            if job_id not in own:
                await self.send_message(Error(code="not_found", message=f"no job {job_id}", ref=job_id))
        self.watched.update(own)
        for payload in history:
            update = JobStatusUpdate.model_validate(payload)
            await self.job_event(jobs.event_for_clients(update))

    def _own_history(self, job_ids: list[str]) -> tuple[set[str], list[dict]]:
        """Which of ``job_ids`` are the client's, and their events in order: one query."""
        if not job_ids:
            return set(), []
        rows = sql.fetch(
            f"SELECT j.id, e.payload FROM {sql.table(Job)} j LEFT JOIN {sql.table(JobEvent)} e ON e.job_id = j.id"
            f" WHERE j.id IN ({sql.marks(len(job_ids))}) AND j.client_hotkey = %s ORDER BY e.id",
            [*(sql.prep(Job, "id", job_id) for job_id in job_ids), self.peer_hotkey],
        )
        payload = JobEvent._meta.get_field("payload")
        own = {str(Job._meta.pk.to_python(job_id)) for job_id, _ in rows}
        return own, [payload.from_db_value(raw, None, connection) for _, raw in rows if raw is not None]

    async def frame_job_unwatch(self, message: JobUnwatch) -> None:
        for job_id in message.job_ids:
            if job_id in self.watched:
                self.watched.discard(job_id)
                await self.channel_layer.group_discard(jobs.event_group(job_id), self.channel_name)

    async def job_event(self, event: dict[str, Any]) -> None:
        job_id = event.get("job_id", "")
        if job_id not in self.watched:
            return  # joined a moment for a job that turned out not to be the client's, or unwatched
        await self.send(text_data=event["frame"])
        if event.get("final"):
            # Nothing more will come for this job: stop watching it, or watches pile up forever.
            self.watched.discard(job_id)
            await self.channel_layer.group_discard(jobs.event_group(job_id), self.channel_name)

    async def disconnect(self, code: int) -> None:
        for job_id in getattr(self, "watched", ()):
            await self.channel_layer.group_discard(jobs.event_group(job_id), self.channel_name)
