"""Which miner gets a job: for now, a connected miner with free capacity of the job's class.

The full routing (reliability weights, blacklist) comes with the marketplace-integrity work.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from validator.miners import MinerConnection

__all__ = ["pick_miner"]


def pick_miner(
    miners: Iterable[MinerConnection], executor_class: str, exclude: set[str], pinned: str | None = None
) -> MinerConnection | None:
    """The connected miner with the most free executors of ``executor_class`` (ties at random)."""
    candidates = [
        miner
        for miner in miners
        if miner.connected
        and miner.hotkey not in exclude
        and miner.free(executor_class) > 0
        and (pinned is None or miner.hotkey == pinned)
    ]
    if not candidates:
        return None
    most = max(miner.free(executor_class) for miner in candidates)
    return random.choice([miner for miner in candidates if miner.free(executor_class) == most])
