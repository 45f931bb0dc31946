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

from protocol.keys import Keypair
from protocol.scores import ScoreSheet, sign_scores
from validator.reputation import Reputation, load_reputation

__all__ = ["DEFAULT_WINDOW_S", "compute_scores", "publish_scores"]

DEFAULT_WINDOW_S = 3600.0


def compute_scores(
    completed: Iterable[tuple[str, str]], reputation: Reputation, now: float
) -> dict[str, dict[str, float]]:
    """``completed``: one ``(miner_hotkey, executor_class)`` per distinct completed job attempt."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for miner, executor_class in completed:
        counts[miner][executor_class] += 1
    scores: dict[str, dict[str, float]] = {}
    for miner, per_class in counts.items():
        factor = 0.0 if reputation.is_blacklisted(miner, now) else 1.0 / (1 + reputation.recent_incidents(miner, now))
        scores[miner] = {cls: round(count * factor, 6) for cls, count in sorted(per_class.items())}
    return scores


def publish_scores(keypair: Keypair, window_s: float = DEFAULT_WINDOW_S, now: float | None = None) -> ScoreSheet:
    """Compute, sign and store this validator's sheet (sync ORM)."""
    from validator.models import PublishedScores, ReceiptRecord

    now = now if now is not None else time.time()
    rows = ReceiptRecord.objects.filter(kind="finished", status="completed", at__gte=now - window_s, at__lte=now)
    distinct = set(rows.values_list("job_id", "attempt", "miner_hotkey", "executor_class"))
    reputation = load_reputation(window_s, now)
    scores = compute_scores(((miner, cls) for _, _, miner, cls in distinct), reputation, now)
    sheet = sign_scores(keypair, ScoreSheet(validator_hotkey=keypair.hotkey, at=now, window_s=window_s, scores=scores))
    PublishedScores.objects.create(at=now, sheet=sheet.model_dump(mode="json"))
    return sheet
