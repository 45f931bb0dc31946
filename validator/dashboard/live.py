"""Jobs in flight, pushed to browsers as Server-Sent Events.

One :class:`LiveFeed` per dashboard process (per event loop) reads the job events written since
the last read, by id, every ``DASHBOARD_POLL_S`` (one indexed query, whatever the number of
browsers) and hands each batch to every connected browser's queue. It runs while someone
listens. The same works on SQLite and PostgreSQL, and needs no Redis: the connector writes
``JobEvent`` rows and knows nothing of the dashboard.

A browser's stream starts after the last event its page showed (``?after=ID``, or the
``Last-Event-ID`` an ``EventSource`` sends when it reconnects): it subscribes first, then reads
what it missed from the table, then relays the feed, dropping what it already sent, so no event
is lost or shown twice across a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import weakref
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from validator.dashboard.queries import events_after

__all__ = ["LiveFeed", "feed", "sse_stream"]

log = logging.getLogger("grid.validator.dashboard")

BATCH = 500
KEEPALIVE_S = 15.0
STREAM_MAX_S = 600.0  # then the browser reconnects (with Last-Event-ID): bounds a forgotten tab's stream
QUEUE_BATCHES = 200  # a browser this far behind is dropped and reconnects

_feeds: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LiveFeed] = weakref.WeakKeyDictionary()


def _read(after: int) -> list[dict]:
    try:
        return events_after(after, BATCH)
    except DatabaseError:
        close_old_connections()  # a dropped PostgreSQL connection: the next read opens a new one
        raise


class LiveFeed:
    """Reads new job events every ``interval`` seconds and fans them out to subscribers."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last_id: int | None = None
        self.subscribers: set[asyncio.Queue[list[dict] | None]] = set()
        self._task: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"<LiveFeed every {self.interval:g}s, {len(self.subscribers)} listening, after {self.last_id}>"

    @contextlib.asynccontextmanager
    async def subscribe(self, after: int) -> AsyncIterator[asyncio.Queue[list[dict] | None]]:
        """A queue of event batches (each a list of payloads, ``None`` once dropped) from past ``after`` on."""
        queue: asyncio.Queue[list[dict] | None] = asyncio.Queue(QUEUE_BATCHES)
        self.subscribers.add(queue)
        if self.last_id is None or self.last_id > after:
            # Never start past what the new subscriber has; the others drop what they already sent.
            self.last_id = after
        if self._task is None or self._task.done():
            # A context of its own: not the request's, whose thread-sensitive executor ends with it.
            self._task = asyncio.create_task(self._run(), context=contextvars.Context())
        try:
            yield queue
        finally:
            self.subscribers.discard(queue)

    async def _run(self) -> None:
        while self.subscribers:
            try:
                batch = await sync_to_async(_read, thread_sensitive=True)(self.last_id or 0)
            except DatabaseError:
                log.exception("the live feed could not read job events; retrying")
                batch = []
            if batch:
                self.last_id = batch[-1]["id"]
                self._publish(batch)
            if len(batch) < BATCH:
                await asyncio.sleep(self.interval)
        self.last_id = None

    def _publish(self, batch: list[dict]) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(batch)
            except asyncio.QueueFull:
                self.subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)


def feed() -> LiveFeed:
    """The running event loop's feed."""
    loop = asyncio.get_running_loop()
    if loop not in _feeds:
        _feeds[loop] = LiveFeed(float(getattr(settings, "DASHBOARD_POLL_S", 0.5)))
    return _feeds[loop]


def _message(event: dict) -> str:
    return f"id: {event['id']}\nevent: job\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


async def sse_stream(after: int, *, live: LiveFeed | None = None, max_s: float = STREAM_MAX_S) -> AsyncIterator[str]:
    """The ``text/event-stream`` body for one browser: job events with an id above ``after``."""
    live = live or feed()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    last = after
    async with live.subscribe(after) as queue:
        yield "retry: 2000\n\n"
        while True:  # what happened since the page was drawn
            missed = await sync_to_async(_read, thread_sensitive=True)(last)
            for event in missed:
                yield _message(event)
            last = missed[-1]["id"] if missed else last
            if len(missed) < BATCH:
                break
        while loop.time() < deadline:
            try:
                async with asyncio.timeout(min(KEEPALIVE_S, max(0.0, deadline - loop.time()))):
                    batch = await queue.get()
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if batch is None:
                return  # too far behind: the browser reconnects from its last id
            for event in batch:
                if event["id"] > last:
                    yield _message(event)
                    last = event["id"]
