"""Which miner gets a job: for now, a connected miner with free capacity of the job's class.

The full routing (reliability weights, blacklist) comes with the marketplace-integrity work.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from protocol.spec import ResourceLimits
from validator.miners import MinerConnection

__all__ = ["pick_miner"]


def pick_miner(
    miners: Iterable[MinerConnection],
    executor_class: str,
    exclude: set[str],
    pinned: str | None = None,
    limits: ResourceLimits | None = None,
) -> MinerConnection | None:
    """The miner with the most free executors of ``executor_class`` that fit ``limits`` (ties at random)."""
    candidates = [
        miner
        for miner in miners
        if miner.offers(executor_class, limits)
        and miner.hotkey not in exclude
        and miner.free(executor_class) > 0
        and (pinned is None or miner.hotkey == pinned)
    ]
    if not candidates:
        return None
    most = max(miner.free(executor_class) for miner in candidates)
    return random.choice([miner for miner in candidates if miner.free(executor_class) == most])
