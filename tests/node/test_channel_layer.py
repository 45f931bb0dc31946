"""node/channel_layer.py's in-memory layer: Channels' contract, swept less often."""

from __future__ import annotations

import asyncio

import pytest

from node.channel_layer import InMemoryChannelLayer


async def test_a_group_send_reaches_each_member_once_and_no_one_else() -> None:
    layer = InMemoryChannelLayer()
    members = [await layer.new_channel() for _ in range(3)]
    outsider = await layer.new_channel()
    for channel in members:
        await layer.group_add("job.1", channel)
    await layer.group_send("job.1", {"type": "job.event", "n": 1})
    for channel in members:
        assert await asyncio.wait_for(layer.receive(channel), 1) == {"type": "job.event", "n": 1}
    await layer.send(outsider, {"type": "other"})
    assert await layer.receive(outsider) == {"type": "other"}  # nothing of the group's before it


async def test_a_full_member_misses_the_message_and_the_others_still_get_it() -> None:
    layer = InMemoryChannelLayer(capacity=1)
    full, free = await layer.new_channel(), await layer.new_channel()
    for channel in (full, free):
        await layer.group_add("job.1", channel)
    await layer.send(full, {"type": "first"})
    await layer.group_send("job.1", {"type": "second"})
    assert await layer.receive(full) == {"type": "first"}
    assert await layer.receive(free) == {"type": "second"}


async def test_a_message_is_copied_on_send() -> None:
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    message = {"type": "job.event", "nested": {"status": "sent"}}
    await layer.group_add("job.1", channel)
    await layer.group_send("job.1", message)
    message["nested"]["status"] = "changed after sending"
    assert (await layer.receive(channel))["nested"] == {"status": "sent"}


@pytest.mark.parametrize("sweep", [0.0, 60.0])
async def test_expired_messages_and_memberships_go_at_the_next_sweep(sweep: float) -> None:
    layer = InMemoryChannelLayer(expiry=0.05, group_expiry=1)
    layer.clean_every_s = sweep
    stale, member = await layer.new_channel(), await layer.new_channel()
    await layer.send(stale, {"type": "old"})
    await layer.group_add("job.1", member)
    layer.groups["job.1"][member] -= 5  # joined long ago
    await asyncio.sleep(0.1)
    layer._cleaned_at = float("-inf")  # a sweep is due, whatever the interval
    await layer.group_send("job.1", {"type": "new"})
    assert stale not in layer.channels  # the expired message went, and its empty queue with it
    assert member not in layer.groups["job.1"]  # the expired membership went: no message for it
    assert member not in layer.channels
