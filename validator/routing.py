"""Which miner gets a job attempt (DESIGN.md §8), and why; whether a failed attempt is retried.

Among the miners offering the job's executor class with a free executor big enough for its
limits, the choice is random, weighted by reliability (:class:`validator.reputation.Reputation`:
recent incidents lower the weight); blacklisted miners and miners already tried for this job
are skipped. A client's pin (or the trusted miner of a cross-validation run) narrows the choice
to one miner. Every decision lists each miner with its weight or the reason it was skipped, and
the validator records it.

:class:`Router` is one job's side of it, used by the job driver (validator/driver.py): the miner
for the next attempt (waiting in line while every executor of the class is busy), whether another
miner could take a retry, and why none took the job. :func:`retry_or_final` is the retry policy,
a pure function of the attempt's failure.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from protocol.messages import JobFailure
from protocol.spec import ResourceLimits
from protocol.status import JobStatus, RejectReason, Stage
from validator.miners import CapacityWatch, MinerConnection
from validator.reputation import Reputation

if TYPE_CHECKING:  # both import this module
    from validator.driver import ActiveJob
    from validator.ledger import NullLedger

__all__ = [
    "MINER_GRACE_S",
    "AfterFailure",
    "Candidate",
    "Decision",
    "Router",
    "Skip",
    "Why",
    "retry_or_final",
    "route",
]

MINER_GRACE_S = 10.0


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


class Router:
    """Where one job's attempts go (the job driver asks; the choice is :func:`route`'s).

    Args:
        job: the job and its current attempt number.
        miners: returns the miner connections to choose from.
        ledger: records the routing decisions; its reputation weighs them.
        capacity: woken whenever a manifest changes.
        queue_timeout: how long a job waits for a free executor while all of its class are busy.
    """

    def __init__(
        self,
        job: ActiveJob,
        miners: Callable[[], list[MinerConnection]],
        ledger: NullLedger,
        capacity: CapacityWatch,
        queue_timeout: float,
    ) -> None:
        self.job, self.miners, self.ledger = job, miners, ledger
        self.capacity, self.queue_timeout = capacity, queue_timeout
        self.busy: set[str] = set()  # declined as busy (proven): not offered again until a manifest changes
        self.queued_since: float | None = None  # when the job began waiting for an executor

    def pick(self, tried: set[str], *, record: bool = True) -> MinerConnection | None:
        spec = self.job.spec
        decision = route(
            self.miners(),
            spec.executor_class,
            exclude=tried,
            pinned=self.job.pin,
            limits=spec.limits,
            reputation=self.ledger.reputation,
        )
        if record and decision.chosen is not None:
            self.ledger.routed(self.job.job_id, self.job.attempt, decision)
        return decision.chosen

    async def wait_for_miner(self, tried: set[str]) -> MinerConnection | None:
        """A miner with a free executor; while every one offering the class is busy, wait in line.

        A configured miner that is not connected (yet) counts as a possible home for the job for
        :data:`MINER_GRACE_S`, so a job arriving while the validator is still starting is not
        rejected for want of a manifest.
        """
        loop = asyncio.get_running_loop()
        if self.queued_since is None:
            self.queued_since = loop.time()
        started = self.queued_since
        deadline = started + self.queue_timeout
        executor_class = self.job.spec.executor_class
        while True:
            miner = self.pick(tried | self.busy)
            if miner is not None:
                return miner
            in_grace = loop.time() - started < MINER_GRACE_S
            candidates = [
                m
                for m in self.miners()
                if m.hotkey not in tried
                and (self.job.pin is None or m.hotkey == self.job.pin)
                and not self.ledger.reputation.is_blacklisted(m.hotkey)
                and (m.offers(executor_class, self.job.spec.limits) or (in_grace and not m.manifest))
            ]
            remaining = deadline - loop.time()
            if not candidates or remaining <= 0:
                self.ledger.routed(self.job.job_id, self.job.attempt, self.decision(tried))
                return None
            if await self.capacity.changed(min(remaining, MINER_GRACE_S) if in_grace else remaining):
                self.busy.clear()  # a manifest changed: ask the miners that were busy again

    def could_run(self, tried: set[str]) -> bool:
        """Is there another miner that could take the job, now or once an executor frees up?

        One that is disconnected counts too: it may be restarting (the retry then waits for it
        :data:`MINER_GRACE_S`, like a job arriving before the miners' first manifests).
        """
        spec, reputation = self.job.spec, self.ledger.reputation
        return any(
            miner.hotkey not in tried
            and (self.job.pin is None or miner.hotkey == self.job.pin)
            and not reputation.is_blacklisted(miner.hotkey)
            and (miner.offers(spec.executor_class, spec.limits) or not miner.connected)
            for miner in self.miners()
        )

    def decision(self, tried: set[str]) -> Decision:
        spec = self.job.spec
        return route(
            self.miners(), spec.executor_class, exclude=tried, pinned=self.job.pin, limits=spec.limits,
            reputation=self.ledger.reputation,
        )  # fmt: skip

    def rejection(self, declined_reason: str | None = None, declined_message: str = "") -> JobFailure:
        """Why no miner took the job: all busy, none big enough, or none offering its class.

        ``declined_reason``/``declined_message``: the last refusal that was not "busy", if any.
        """
        spec = self.job.spec
        cls = spec.executor_class
        offering = [miner for miner in self.miners() if miner.offers(cls)]
        if offering and all(self.ledger.reputation.is_blacklisted(miner.hotkey) for miner in offering):
            message = f"every connected miner offering {cls} is blacklisted"
            return JobFailure(
                reason=RejectReason.NO_MINER, message=message, stage=Stage.RESERVATION, reported_by="validator"
            )
        if declined_reason == RejectReason.NO_STREAMING_PORT:
            reason, message = RejectReason.NO_STREAMING_PORT, f"no miner had a free streaming port ({declined_message})"
        elif any(miner.offers(cls, spec.limits) for miner in offering):
            reason, message = (
                RejectReason.BUSY,
                f"no connected miner had a free {cls} executor within {self.queue_timeout:g}s",
            )
        elif offering:
            why = offering[0].shortfall(cls, spec.limits)
            reason, message = RejectReason.LIMITS_EXCEED_CLASS, f"the job's limits do not fit a {cls} executor ({why})"
        else:
            reason, message = RejectReason.NO_MINER, f"no connected miner had a free {cls} executor"
        return JobFailure(reason=reason, message=message, stage=Stage.RESERVATION, reported_by="validator")


# -- retry or final --------------------------------------------------------------------------------


class Why:
    """Why a failed attempt is retried or final (closed set)."""

    JOB_FAILED = "job_failed"  # the job's own failure (its command, its inputs): final wherever it runs
    NO_ATTEMPTS_LEFT = "no_attempts_left"  # the spec's max_attempts are spent
    NO_OTHER_MINER = "no_other_miner"  # a grid fault, but no other miner could take the job
    GRID_FAULT = "grid_fault"  # the grid's fault, an attempt left and somewhere to go: retried


@dataclass(frozen=True, slots=True)
class AfterFailure:
    """What becomes of a job whose attempt failed: ``retry`` it as the next attempt, or end it
    with ``status``; ``reason`` is one of :class:`Why`."""

    retry: bool
    status: JobStatus
    reason: str


def retry_or_final(
    failure: JobFailure, *, infra: bool, attempt: int, max_attempts: int, elsewhere: bool = True
) -> AfterFailure:
    """Retry or final, for an attempt that ended with ``failure`` (no I/O, nothing mutated).

    The shape of websockets' ``process_exception``: the loop that drives the attempts hands
    over what went wrong and gets back whether to try again. An ``infra_failed`` attempt
    (``infra``: the grid's fault, not the job's) is retried while ``attempt < max_attempts``
    and some other miner could take it (``elsewhere``); a job's own failure is final.

    ``failure`` is not read today (every grid fault retries alike): it is an input so that a
    policy by reason (not retrying what a retry cannot mend) changes this function only.
    """
    if not infra:
        return AfterFailure(False, JobStatus.FAILED, Why.JOB_FAILED)
    if attempt >= max_attempts:
        return AfterFailure(False, JobStatus.INFRA_FAILED, Why.NO_ATTEMPTS_LEFT)
    if not elsewhere:
        return AfterFailure(False, JobStatus.INFRA_FAILED, Why.NO_OTHER_MINER)
    return AfterFailure(True, JobStatus.INFRA_FAILED, Why.GRID_FAULT)
