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
import time
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


@dataclass(frozen=True, slots=True)
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
    skipped: dict[str, int] = field(default_factory=dict)  # how many miners each skip reason left out

    @property
    def reason(self) -> str:
        if self.chosen is not None:
            return "only_candidate" if self.eligible == 1 else "weighted_choice"
        return "no_candidate"

    def record(self, eligible_kept: int = 20) -> list[dict]:
        """The candidates as stored: the chosen one, up to ``eligible_kept`` other eligible ones
        (highest weight first) and every named skip; ``skipped`` counts all of them by reason."""
        chosen = self.chosen.hotkey if self.chosen else None
        eligible = sorted(
            (c for c in self.candidates if c.skipped is None and c.hotkey != chosen), key=lambda c: -c.weight
        )
        kept = [c for c in self.candidates if c.hotkey == chosen] + eligible[:eligible_kept]
        return [c.as_json() for c in kept] + [c.as_json() for c in self.candidates if c.skipped is not None]

    @property
    def eligible(self) -> int:
        return sum(1 for candidate in self.candidates if candidate.skipped is None)

    def __repr__(self) -> str:
        chosen = self.chosen.hotkey[:12] if self.chosen else None
        return f"<Decision {self.executor_class} → {chosen} of {len(self.candidates)}>"


# Skips worth naming miner by miner in the record; the rest (a miner without the class, or full)
# are only counted: with a thousand miners, listing every one would make each record huge.
NAMED_SKIPS = frozenset({Skip.TRIED, Skip.BLACKLISTED, Skip.TOO_SMALL, Skip.NOT_CONNECTED})


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
    """Choose a miner for one attempt; ``Decision.chosen`` is ``None`` when none can take it.

    ``Decision.candidates`` lists every eligible miner with its weight and every miner skipped
    for a reason in :data:`NAMED_SKIPS`; ``Decision.skipped`` counts the skips by reason.
    """
    reputation = reputation or Reputation()
    now = time.time() if now is None else now
    blacklisted_until, incidents = reputation.blacklisted_until, reputation.incidents
    candidates: list[Candidate] = []
    skipped: dict[str, int] = {}
    eligible: list[MinerConnection] = []
    weights: list[float] = []
    for miner in miners:
        hotkey = miner.hotkey
        capacity = miner.manifest.get(executor_class)
        if pinned is not None and hotkey != pinned:
            reason: str | None = Skip.NOT_PINNED
        elif hotkey in exclude:
            reason = Skip.TRIED
        elif blacklisted_until.get(hotkey, 0.0) > now:
            reason = Skip.BLACKLISTED
        elif not miner.connected:
            reason = Skip.NOT_CONNECTED
        elif capacity is None or capacity.total == 0:
            reason = Skip.CLASS_NOT_OFFERED
        elif limits is not None and capacity.spec is not None and capacity.spec.shortfall(limits) is not None:
            reason = Skip.TOO_SMALL
        elif capacity.free <= 0:
            reason = Skip.NO_FREE_EXECUTOR
        else:
            weight = reputation.weight(hotkey, now) if hotkey in incidents else 1.0
            eligible.append(miner)
            weights.append(weight)
            candidates.append(Candidate(hotkey, capacity.free, weight))
            continue
        skipped[reason] = skipped.get(reason, 0) + 1
        if reason in NAMED_SKIPS:
            candidates.append(Candidate(hotkey, capacity.free if capacity else 0, 0.0, reason))
    if not eligible:
        return Decision(executor_class, None, candidates, skipped)
    chosen = (rng or random).choices(eligible, weights=weights)[0]
    return Decision(executor_class, chosen, candidates, skipped)
