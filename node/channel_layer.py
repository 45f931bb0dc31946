"""The roles' channel layers: Channels' in-memory one made cheaper per message (the embedded
default), and the Redis one made to ride out a Redis restart (``GRID_CHANNEL_LAYER=redis``).

:class:`InMemoryChannelLayer` keeps Channels' contract (capacity, expiry, groups) but walked
every channel and group for expired entries on every receive and group send (a job's statuses
are several of each), and sent to a group through a task per member.


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
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from redis.exceptions import RedisError

from protocol.retry import backoff

__all__ = ["InMemoryChannelLayer", "ResilientRedisChannelLayer"]

log = logging.getLogger("grid.channels")


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):
    """Expired messages and group memberships are swept at most every ``clean_every_s`` (they
    live ``expiry`` and ``group_expiry`` seconds: a minute and a day by default), and a group
    send puts the message in each member's queue in turn (a send never waits: a full queue
    raises ``ChannelFull`` at once, and the member misses the message, as in Channels)."""

    clean_every_s = 1.0
    _cleaned_at = float("-inf")

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned_at >= self.clean_every_s:
            self._cleaned_at = now
            super()._clean_expired()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            try:
                await self.send(channel, message)
            except ChannelFull:
                pass


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
