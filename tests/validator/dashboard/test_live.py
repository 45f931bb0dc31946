"""The live feed: one poller per process reads new job events and pushes them to every browser (SSE)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.urls import reverse

from tests.validator.dashboard import data
from validator.dashboard.live import LiveFeed, sse_stream
from validator.dashboard.queries import MESSAGE_CHARS, latest_event_id

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 5.0
event = sync_to_async(data.event)


def parse(message: str) -> dict:
    """One SSE message (``id:``, ``event:``, ``data:`` lines) as its JSON payload, with the SSE id checked."""
    lines = dict(line.split(": ", 1) for line in message.strip().splitlines())
    assert lines["event"] == "job"
    payload = json.loads(lines["data"])
    assert int(lines["id"]) == payload["id"]
    return payload


async def next_job(stream) -> dict:
    while True:
        message = await asyncio.wait_for(anext(stream), TIMEOUT)
        if message.startswith("id: "):
            return parse(message)


async def test_the_feed_pushes_events_written_after_a_browser_subscribed():
    live = LiveFeed(0.01)
    after = await sync_to_async(latest_event_id)()
    async with live.subscribe(after) as queue:
        written = await event("job-1", "received")
        batch = await asyncio.wait_for(queue.get(), TIMEOUT)
    assert [(e["id"], e["job_id"], e["status"]) for e in batch] == [(written.id, "job-1", "received")]
    assert not live.subscribers


async def test_one_poller_serves_every_browser_and_stops_when_none_listens():
    live = LiveFeed(0.01)
    after = await sync_to_async(latest_event_id)()
    async with live.subscribe(after) as first, live.subscribe(after) as second:
        task = live._task
        await event("job-2", "accepted", "m" * 64)
        one, two = await asyncio.wait_for(asyncio.gather(first.get(), second.get()), TIMEOUT)
        assert one is two  # read once, handed to both
        assert live._task is task
    await asyncio.wait_for(task, TIMEOUT)  # nobody listens: the poller ends
    assert live.last_id is None


async def test_a_stream_sends_what_was_missed_then_what_comes_without_repeats():
    first = await event("job-3", "received")
    missed = [await event("job-3", "accepted", "m" * 64), await event("job-3", "executor_ready", "m" * 64)]
    live = LiveFeed(0.01)
    stream = sse_stream(first.id, live=live)
    assert await anext(stream) == "retry: 2000\n\n"
    assert [(await next_job(stream))["id"] for _ in missed] == [row.id for row in missed]
    later = await event("job-3", "completed", "m" * 64)
    pushed = await next_job(stream)
    assert (pushed["id"], pushed["status"], pushed["terminal"]) == (later.id, "completed", True)
    await stream.aclose()
    assert not live.subscribers


async def test_a_failure_is_pushed_with_its_reason_and_a_short_message():
    after = await sync_to_async(latest_event_id)()
    failure = {"reason": "timeout", "message": "x" * 5000, "stage": "execution"}
    await sync_to_async(data.event)("job-4", "failed", "m" * 64, failure=failure)
    stream = sse_stream(after, live=LiveFeed(0.01))
    pushed = await next_job(stream)
    await stream.aclose()
    assert pushed["reason"] == "timeout" and pushed["message"] == "x" * MESSAGE_CHARS
    assert pushed["miner"] == "m" * 64 and pushed["attempt"] == 1


async def test_a_stream_ends_after_its_time_and_keeps_idle_connections_alive(monkeypatch):
    monkeypatch.setattr("validator.dashboard.live.KEEPALIVE_S", 0.05)
    after = await sync_to_async(latest_event_id)()
    messages = [message async for message in sse_stream(after, live=LiveFeed(0.01), max_s=0.3)]
    assert messages[0] == "retry: 2000\n\n"
    assert ": keep-alive\n\n" in messages


async def test_the_events_view_streams_to_a_signed_in_operator(operator):
    client = AsyncClient()
    await client.aforce_login(operator)
    seen = await event("job-5", "received")
    response = await client.get(reverse("dashboard:live-events"), {"after": seen.id - 1})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    body = aiter(response.streaming_content)
    assert await anext(body) == b"retry: 2000\n\n"
    assert parse((await anext(body)).decode())["id"] == seen.id


async def test_a_reconnecting_event_source_resumes_after_its_last_event_id(operator):
    client = AsyncClient()
    await client.aforce_login(operator)
    old, new = await event("job-6", "received"), await event("job-6", "accepted", "m" * 64)
    response = await client.get(
        reverse("dashboard:live-events"), {"after": old.id - 1}, headers={"Last-Event-ID": str(old.id)}
    )
    body = aiter(response.streaming_content)
    await anext(body)
    assert parse((await anext(body)).decode())["id"] == new.id


async def test_the_events_view_needs_a_login():
    response = await AsyncClient().get(reverse("dashboard:live-events"))
    assert response.status_code == 302
