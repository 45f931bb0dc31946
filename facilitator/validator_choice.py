"""Which connected validator takes a job (DESIGN.md §8): connected, active, weighted by stake.

A pure choice over what the caller read, so that it is tested without a database; ``dispatch``
reads the registry only when more than one validator could take the job.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TypeVar

from protocol.registry import Neuron, Role

__all__ = ["choose_validator"]

T = TypeVar("T")


def choose_validator(
    candidates: Sequence[tuple[str, T]],
    registry: Mapping[str, Neuron],
    rng: random.Random | None = None,
) -> T | None:
    """Pick one of ``candidates`` (hotkey, value) with probability proportional to its stake.

    A validator the registry lists as inactive (deactivated while connected) or as a miner is
    never picked. One the registry does not know counts with stake 0. When no candidate has a
    positive stake they are equally likely: a grid of unstaked validators still runs its jobs.
    """
    eligible = []
    for hotkey, value in candidates:
        neuron = registry.get(hotkey)
        if neuron is not None and (not neuron.active or neuron.role is not Role.VALIDATOR):
            continue
        eligible.append((max(neuron.stake, 0.0) if neuron is not None else 0.0, value))
    if not eligible:
        return None
    rng = rng or random  # type: ignore[assignment]
    weights = [stake for stake, _ in eligible]
    if sum(weights) <= 0:
        return rng.choice(eligible)[1]
    return rng.choices(eligible, weights=weights)[0][1]
