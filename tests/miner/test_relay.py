"""A relay between the miner's consumers waits while the receiving consumer's queue is full
instead of dropping the frame, and keeps the frames' order."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import InMemoryChannelLayer, channel_layers, get_channel_layer

from grid.settings import miner as miner_settings
from miner.relay import send_event


@pytest.mark.redis_layer
def test_the_miner_relays_in_its_own_memory_whatever_the_configured_layer() -> None:
    # Read at import; the Redis pass of CI imports it with GRID_CHANNEL_LAYER=redis.
    assert miner_settings.CHANNEL_LAYERS["default"]["BACKEND"] == "node.channel_layer.InMemoryChannelLayer"


async def test_a_relay_to_a_full_channel_waits_for_room_and_keeps_the_order() -> None:
    capacity = 50
    channel_layers.set("default", InMemoryChannelLayer(capacity=capacity))
    try:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        for index in range(capacity):
            await send_event(channel, {"type": "validator.forward", "frame": str(index)})
        late = asyncio.create_task(send_event(channel, {"type": "validator.forward", "frame": "late"}))
        await asyncio.sleep(0.1)
        assert not late.done(), "a full channel must hold the relay back, not drop the frame"
        frames = [(await layer.receive(channel))["frame"]]
        await asyncio.wait_for(late, 2)
        while len(frames) < capacity + 1:
            frames.append((await layer.receive(channel))["frame"])
        assert frames == [str(index) for index in range(capacity)] + ["late"]
    finally:
        channel_layers.backends.pop("default", None)
