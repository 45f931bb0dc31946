"""Miner scores from verified ``finished`` receipts (DESIGN.md §8).

A miner's score in an executor class is the number of jobs it completed there within the
window (counted from receipts both parties signed: this validator's, and other validators'
fetched from the miners' pages), divided by ``1 + incidents`` in the window; a blacklisted
miner scores 0. The sheet is signed and stored; the connector sends it to the facilitator.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable

from django.db.models import CharField, Count, Value
from django.db.models.functions import Cast, Concat

from protocol.keys import Keypair
from protocol.scores import ScoreSheet, sign_scores
from validator.reputation import Reputation, load_reputation

__all__ = ["DEFAULT_WINDOW_S", "compute_scores", "publish_scores", "scores_from_counts"]

DEFAULT_WINDOW_S = 3600.0


def compute_scores(
    completed: Iterable[tuple[str, str]], reputation: Reputation, now: float
) -> dict[str, dict[str, float]]:
    """``completed``: one ``(miner_hotkey, executor_class)`` per distinct completed job attempt."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for miner, executor_class in completed:
        counts[miner, executor_class] += 1
    return scores_from_counts(counts.items(), reputation, now)


def scores_from_counts(
    counts: Iterable[tuple[tuple[str, str], int]], reputation: Reputation, now: float
) -> dict[str, dict[str, float]]:
    """``counts``: ``((miner_hotkey, executor_class), completed attempts)``, once per pair."""
    per_miner: dict[str, dict[str, int]] = defaultdict(dict)
    for (miner, executor_class), count in counts:
        per_miner[miner][executor_class] = count
    scores: dict[str, dict[str, float]] = {}
    for miner, per_class in per_miner.items():
        factor = 0.0 if reputation.is_blacklisted(miner, now) else 1.0 / (1 + reputation.recent_incidents(miner, now))
        scores[miner] = {cls: round(count * factor, 6) for cls, count in sorted(per_class.items())}
    return scores


def publish_scores(keypair: Keypair, window_s: float = DEFAULT_WINDOW_S, now: float | None = None) -> ScoreSheet:
    """Compute, sign and store this validator's sheet (sync ORM)."""
    from validator.models import PublishedScores, ReceiptRecord

    now = now if now is not None else time.time()
    rows = ReceiptRecord.objects.filter(kind="finished", status="completed", at__gte=now - window_s, at__lte=now)
    # Counted by the database: a busy hour holds hundreds of thousands of receipts, which as
    # Python tuples cost the validator tens of MiB it keeps (RSS) after each sheet.
    attempt = Concat("job_id", Value(":"), Cast("attempt", CharField()))
    grouped = rows.values("miner_hotkey", "executor_class").annotate(attempts=Count(attempt, distinct=True))
    counts = [((row["miner_hotkey"], row["executor_class"]), row["attempts"]) for row in grouped]
    reputation = load_reputation(window_s, now)
    scores = scores_from_counts(counts, reputation, now)
    sheet = sign_scores(keypair, ScoreSheet(validator_hotkey=keypair.hotkey, at=now, window_s=window_s, scores=scores))
    PublishedScores.objects.create(at=now, sheet=sheet.model_dump(mode="json"))
    return sheet
