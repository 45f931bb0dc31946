"""The overview: jobs per status, jobs in flight (pushed live), charts, miners at a glance."""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from validator.dashboard import charts
from validator.dashboard.queries import TERMINAL, active_blacklist, in_flight_jobs, job_counts, latest_event_id
from validator.models import MinerRecord

__all__ = ["overview"]


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
        "charts": [charts.jobs_per_status(window_s, now), charts.jobs_per_miner(window_s, now)],
        "miners_known": MinerRecord.objects.count(),
        "miners_connected": MinerRecord.objects.filter(connected=True).count(),
        "miners_blacklisted": len(active_blacklist(now)),
    }
    return render(request, "dashboard/overview.html", context)
