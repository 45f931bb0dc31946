"""The overview: jobs per status, jobs in flight (pushed live), charts, miners at a glance.

``charts/`` is the charts alone: the overview's script reads it again as job events are pushed,
so that the charts say what the table and the tiles say (drawn once, they stayed at the page's
load: 0 completed beside a tile that said 1).
"""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from validator.dashboard import charts
from validator.dashboard.queries import TERMINAL, active_blacklist, in_flight_jobs, job_counts, latest_event_id
from validator.models import MinerRecord

__all__ = ["charts_fragment", "overview"]


def overview(request: HttpRequest) -> HttpResponse:
    now = time.time()
    # The last event id first, the jobs after: an event in between is pushed again (the page
    # then shows it twice at worst for a job that ended in those milliseconds), never missed.
    after = latest_event_id()
    window_name, window_s = charts.window(request.GET.get("window"))
    context = {
        "after": after,
        "in_flight": in_flight_jobs(),
        "counts": job_counts(),
        "terminal": TERMINAL,
        "window": window_name,
        "windows": list(charts.WINDOWS),
        "charts": _charts(window_s, now),
        "miners_known": MinerRecord.objects.count(),
        "miners_connected": MinerRecord.objects.filter(connected=True).count(),
        "miners_blacklisted": len(active_blacklist(now)),
    }
    return render(request, "dashboard/overview.html", context)


def _charts(window_s: float, now: float) -> list[charts.Chart]:
    return [charts.jobs_per_status(window_s, now), charts.jobs_per_miner(window_s, now)]


def charts_fragment(request: HttpRequest) -> HttpResponse:
    """``charts/?window=1h``: the overview's charts, as the markup the page swaps in."""
    _, window_s = charts.window(request.GET.get("window"))
    return render(request, "dashboard/_charts.html", {"charts": _charts(window_s, time.time())})
