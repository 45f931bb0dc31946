"""Routing decisions: which miner each job attempt went to, among which candidates, and why."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from validator.dashboard.views import paginate
from validator.models import RoutingDecision

__all__ = ["routing"]

REASONS = ["weighted_choice", "only_candidate", "no_candidate"]


def routing(request: HttpRequest) -> HttpResponse:
    decisions = RoutingDecision.objects.order_by("-at", "-id")
    job = request.GET.get("job", "").strip()
    miner = request.GET.get("miner", "").strip()
    reason = request.GET.get("reason", "")
    if job:
        decisions = decisions.filter(job_id=job)
    if miner:
        decisions = decisions.filter(chosen__startswith=miner)
    if reason in REASONS:
        decisions = decisions.filter(reason=reason)
    context = {"page": paginate(request, decisions), "job": job, "miner": miner, "reason": reason, "reasons": REASONS}
    return render(request, "dashboard/routing.html", context)
