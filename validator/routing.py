"""Which miner gets a job attempt (DESIGN.md §8), and why.

Among the miners offering the job's executor class with a free executor big enough for its
limits, the choice is random, weighted by reliability (:class:`validator.reputation.Reputation`:
recent incidents lower the weight); blacklisted miners and miners already tried for this job
are skipped. A client's pin (or the trusted miner of a cross-validation run) narrows the choice
to one miner. Every decision lists each miner with its weight or the reason it was skipped, and
the validator records it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from protocol.spec import ResourceLimits
from validator.miners import MinerConnection
from validator.reputation import Reputation

__all__ = ["Candidate", "Decision", "Skip", "route"]


class Skip:
    """Why a miner was not a candidate (closed set, shown on the dashboard)."""

    NOT_CONNECTED = "not_connected"
    NOT_PINNED = "not_pinned"
    TRIED = "tried"
    BLACKLISTED = "blacklisted"
    CLASS_NOT_OFFERED = "class_not_offered"
    TOO_SMALL = "too_small"
    NO_FREE_EXECUTOR = "no_free_executor"


@dataclass(frozen=True)
class Candidate:
    hotkey: str
    free: int
    weight: float
    skipped: str | None = None

    def as_json(self) -> dict:
        return {"hotkey": self.hotkey, "free": self.free, "weight": round(self.weight, 4), "skipped": self.skipped}


@dataclass
class Decision:
    executor_class: str
    chosen: MinerConnection | None
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def reason(self) -> str:
        if self.chosen is not None:
            eligible = sum(1 for candidate in self.candidates if candidate.skipped is None)
            return "only_candidate" if eligible == 1 else "weighted_choice"
        return "no_candidate"

    def __repr__(self) -> str:
        chosen = self.chosen.hotkey[:12] if self.chosen else None
        return f"<Decision {self.executor_class} → {chosen} of {len(self.candidates)}>"


def _skip(miner: MinerConnection, executor_class: str, limits: ResourceLimits | None) -> str | None:
    if not miner.connected:
        return Skip.NOT_CONNECTED
    capacity = miner.manifest.get(executor_class)
    if capacity is None or capacity.total == 0:
        return Skip.CLASS_NOT_OFFERED
    if limits is not None and not miner.offers(executor_class, limits):
        return Skip.TOO_SMALL
    if capacity.free <= 0:
        return Skip.NO_FREE_EXECUTOR
    return None


def route(
    miners: Iterable[MinerConnection],
    executor_class: str,
    *,
    exclude: set[str] = frozenset(),  # type: ignore[assignment]
    pinned: str | None = None,
    limits: ResourceLimits | None = None,
    reputation: Reputation | None = None,
    now: float | None = None,
    rng: random.Random | None = None,
) -> Decision:
    """Choose a miner for one attempt; ``Decision.chosen`` is ``None`` when none can take it."""
    reputation = reputation or Reputation()
    candidates: list[Candidate] = []
    eligible: list[tuple[MinerConnection, float]] = []
    for miner in miners:
        free = miner.free(executor_class)
        if pinned is not None and miner.hotkey != pinned:
            skipped: str | None = Skip.NOT_PINNED
        elif miner.hotkey in exclude:
            skipped = Skip.TRIED
        elif reputation.is_blacklisted(miner.hotkey, now):
            skipped = Skip.BLACKLISTED
        else:
            skipped = _skip(miner, executor_class, limits)
        weight = 0.0 if skipped else reputation.weight(miner.hotkey, now)
        if skipped is None:
            eligible.append((miner, weight))
        candidates.append(Candidate(miner.hotkey, free, weight, skipped))
    if not eligible:
        return Decision(executor_class, None, candidates)
    chooser = rng or random
    chosen = chooser.choices([miner for miner, _ in eligible], weights=[weight for _, weight in eligible])[0]
    return Decision(executor_class, chosen, candidates)
