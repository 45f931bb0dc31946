"""Scores: the latest sheet this validator signed, miner by executor class, and the ones before."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from validator.models import PublishedScores

__all__ = ["scores"]


def scores(request: HttpRequest) -> HttpResponse:
    sheets = list(PublishedScores.objects.order_by("-at")[:20])
    latest = sheets[0] if sheets else None
    scores = (latest.sheet.get("scores") or {}) if latest is not None else {}
    classes = sorted({cls for per_class in scores.values() for cls in per_class})
    # (miner, its score in each class or None, its total), best first
    rows = [
        (miner, [per_class.get(cls) for cls in classes], sum(per_class.values())) for miner, per_class in scores.items()
    ]
    rows.sort(key=lambda row: (-row[2], row[0]))
    context = {"latest": latest, "classes": classes, "rows": rows, "history": sheets}
    return render(request, "dashboard/scores.html", context)
