"""The Redis channel layer, made to ride out a Redis restart (``GRID_CHANNEL_LAYER=redis``).

channels_redis lets a connection error escape ``receive()``, and Channels then ends the
consumer: every websocket of the process whose consumer was waiting on the layer (all of them)
dropped when Redis restarted, and peers were refused while it was down. Here ``receive()``
waits for Redis to come back instead, with backoff. What was sent while Redis was down is lost
(sends still raise, and their callers say what that costs); the protocol's acknowledgements
and redeliveries make up for it (DESIGN.md §3).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels_redis.core import RedisChannelLayer
from redis.exceptions import RedisError

from protocol.retry import backoff

__all__ = ["ResilientRedisChannelLayer"]

log = logging.getLogger("grid.channels")


class ResilientRedisChannelLayer(RedisChannelLayer):
    async def receive(self, channel: str) -> dict[str, Any]:
        delays = backoff(initial=0.1, maximum=2.0)
        failing = False
        while True:
            try:
                message = await super().receive(channel)
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("channel layer unreachable (%s): waiting for Redis", exc)
                    failing = True
                await asyncio.sleep(next(delays))
                continue
            if failing:
                log.info("channel layer reachable again")
            return message
