"""Jobs kept running for a validator whose connection dropped, until it comes back (DESIGN.md §3).

A dropped connection is not a dead validator: a restarted proxy, a network blip or a validator
that reconnects within seconds would otherwise cost every job it had here a new attempt. So
when a validator's connection ends, its jobs go on and are *held* for ``MINER_RESUME_GRACE_S``.
What their executors report meanwhile is kept on the slot (:attr:`ExecutorSlot.reported`, every
frame of the attempt, in order). When the same validator (by hotkey) connects again, it claims
them: the miner announces them (``jobs.running``) and replays their frames, and the validator's
drivers carry on; it ignores frames it already had, and cancels jobs it no longer drives. When
the grace runs out, held jobs still running are cancelled and their executors freed, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from miner.executors.pool import ExecutorSlot

__all__ = ["Held", "JobHolds"]

log = logging.getLogger("grid.miner")


@dataclass(eq=False)
class Held:
    slot: ExecutorSlot
    validator_hotkey: str
    expiry: asyncio.TimerHandle


class JobHolds:
    """The held jobs of one miner process, by job id."""

    def __init__(self, grace_s: float, on_expired: Callable[[ExecutorSlot], Awaitable[None]]) -> None:
        self.grace_s = grace_s
        self.on_expired = on_expired
        self.held: dict[str, Held] = {}

    def hold(self, slot: ExecutorSlot, validator_hotkey: str) -> None:
        """Keep ``slot``'s job for ``validator_hotkey`` until it reconnects or the grace runs out."""
        job_id = str(slot.job_id)
        self.release(job_id)
        loop = asyncio.get_running_loop()
        expiry = loop.call_later(self.grace_s, lambda: asyncio.ensure_future(self._expire(job_id)))
        self.held[job_id] = Held(slot, validator_hotkey, expiry)

    def claim(self, validator_hotkey: str) -> list[ExecutorSlot]:
        """The jobs held for ``validator_hotkey``, handed back to it (no longer held), oldest first."""
        mine = [job_id for job_id, held in self.held.items() if held.validator_hotkey == validator_hotkey]
        return [self.release(job_id) for job_id in mine]  # type: ignore[misc]

    def release(self, job_id: str) -> ExecutorSlot | None:
        """Stop holding ``job_id`` (claimed, cancelled or superseded); its slot, if it was held."""
        held = self.held.pop(job_id, None)
        if held is None:
            return None
        held.expiry.cancel()
        return held.slot

    async def _expire(self, job_id: str) -> None:
        slot = self.release(job_id)
        if slot is None:
            return
        log.warning("validator did not come back within %gs: cancelling job %s", self.grace_s, job_id)
        try:
            await self.on_expired(slot)
        except Exception:
            log.exception("could not cancel held job %s", job_id)
