"""What the monitor knows of the client's jobs, kept current from the facilitator, fanned out to pages.

The facilitator's event stream pushes a job's statuses to whoever watches that job id
(``job.watch``), but it has no "every job of mine" subscription: so the feed lists the client's
newest jobs every ``poll_s`` to find new ones, and watches each job that has not ended over the
SDK's one event stream (:meth:`facilitator_sdk.AsyncClient.wait`). Every change goes to each
subscriber (a page's Server-Sent Events stream) as an :class:`Event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from facilitator_sdk import AsyncClient, GridError
from facilitator_sdk.job import AsyncJob
from protocol.messages import JobStatusUpdate

__all__ = ["Event", "Feed", "summary"]

log = logging.getLogger("grid.monitor")

POLL_S = 2.0
LIST_LIMIT = 200  # the newest jobs the monitor lists and watches
QUEUE_SIZE = 1000  # events held for a slow page; past it the page is dropped and its EventSource reconnects


@dataclass(frozen=True)
class Event:
    """One thing a page may show: ``kind`` is ``job`` (a job's row changed) or ``status`` (a pushed status)."""

    kind: str
    job_id: str
    data: dict[str, Any]


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def summary(job: AsyncJob) -> dict[str, Any]:
    """A job as the jobs table shows it (times as Unix seconds; ``ran_s`` once it has a result)."""
    data = job.to_dict()
    result = data.get("result") or {}
    history = data.get("history") or []
    created = _timestamp(data.get("created_at"))
    ended = max((event["at"] for event in history), default=None) if job.done else None
    if job.done and ended is None:
        ended = _timestamp(data.get("updated_at"))
    return {
        "job_id": job.job_id,
        "status": job.status,
        "attempt": job.attempt,
        "miner": job.miner,
        "executor_class": job.spec.get("executor_class", "cpu.small"),
        "command": " ".join(job.spec.get("command", [])),
        "created_at": created,
        "ended_at": ended,
        "ran_s": result.get("duration_s"),
        "done": job.done,
        "failure": {key: (job.failure or {}).get(key) for key in ("reason", "message")} if job.failure else None,
    }


class Feed:
    """The client's jobs, newest first, and the subscribers that follow them.

    Args:
        client: the signed client; the feed never closes it.
        poll_s: how often the job list is read for new jobs.
    """

    def __init__(self, client: AsyncClient, poll_s: float = POLL_S) -> None:
        self.client = client
        self.poll_s = poll_s
        self.jobs: dict[str, AsyncJob] = {}
        self.error: str | None = None  # the last failure to reach the facilitator, shown on the pages
        self._watching: dict[str, asyncio.Task[None]] = {}
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._poller: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Feed {len(self.jobs)} jobs, {len(self._watching)} watched, {len(self._subscribers)} pages>"

    async def start(self) -> None:
        await self.refresh()
        self._poller = asyncio.create_task(self._poll(), name="monitor: job list")

    async def stop(self) -> None:
        tasks = [task for task in [self._poller, *self._watching.values()] if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- pages ---------------------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        return queue

    def subscribed(self, queue: asyncio.Queue[Event]) -> bool:
        """``False`` once the feed dropped the queue (its page fell too far behind)."""
        return queue in self._subscribers

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._subscribers.discard(queue)

    def listing(self, status: str | None = None) -> list[dict[str, Any]]:
        jobs = sorted(self.jobs.values(), key=lambda job: summary(job)["created_at"] or 0, reverse=True)
        return [summary(job) for job in jobs if status is None or job.status == status]

    async def job(self, job_id: str) -> AsyncJob:
        """The job fetched afresh, whole (history and result); followed from now on if it goes on."""
        job = await self.client.get_job(job_id)
        self._track(job)
        return job

    # -- the facilitator -----------------------------------------------------------------------

    async def refresh(self) -> None:
        try:
            listed = await self.client.list_jobs(limit=LIST_LIMIT)
        except GridError as exc:
            self.error = str(exc)
            log.warning("cannot list jobs: %s", exc)
            return
        self.error = None
        for job in listed:
            self._track(job)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self.refresh()

    def _track(self, job: AsyncJob) -> None:
        known = self.jobs.get(job.job_id)
        if known is not None and (known.done or job.job_id in self._watching):
            return  # the events keep it current: a listing (without history) would only lose detail
        self.jobs[job.job_id] = job
        self._publish(Event("job", job.job_id, summary(job)))
        if not job.done:
            self._watching[job.job_id] = asyncio.create_task(self._watch(job), name=f"monitor: {job.job_id}")

    async def _watch(self, job: AsyncJob) -> None:
        def on_status(update: JobStatusUpdate) -> None:
            self._publish(Event("status", job.job_id, update.model_dump(mode="json", exclude={"result"})))
            self._publish(Event("job", job.job_id, summary(job)))

        try:
            await self.client.wait(job, on_status=on_status)
        except GridError as exc:
            log.warning("stopped following job %s: %s", job.job_id, exc)
        finally:
            self._watching.pop(job.job_id, None)
        if job.done:
            # The terminal event carries the result; the job as stored also has its timestamps.
            with contextlib.suppress(GridError):
                fresh = await self.client.get_job(job.job_id)
                self.jobs[job.job_id] = fresh
                self._publish(Event("job", job.job_id, summary(fresh)))

    def _publish(self, event: Event) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._subscribers.discard(
                    queue
                )  # its stream ends (at its next keep-alive); the page reconnects, reads afresh
