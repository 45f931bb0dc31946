"""Jobs: the list (filtered by status and miner) and one job's whole story."""

from __future__ import annotations

from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from validator.dashboard.queries import STATUSES, TERMINAL, job_history, with_progress
from validator.dashboard.views import paginate
from validator.models import Incident, ReceiptRecord, RoutingDecision, ValidatorJob

__all__ = ["job_detail", "job_list"]

FAILURE_FIELDS = ("reason", "stage", "message", "exit_code", "reported_by")


def job_list(request: HttpRequest) -> HttpResponse:
    jobs = with_progress(ValidatorJob.objects.order_by("-created_at"))
    status = request.GET.get("status", "")
    miner = request.GET.get("miner", "").strip()
    if status == "in_flight":
        jobs = jobs.exclude(status__in=TERMINAL)
    elif status in STATUSES:
        jobs = jobs.filter(current_status=status)
    if miner:
        jobs = jobs.filter(Q(miner_hotkey__startswith=miner) | Q(last_miner__startswith=miner))
    statuses = ["in_flight", *STATUSES]
    context = {"page": paginate(request, jobs), "statuses": statuses, "status": status, "miner": miner}
    return render(request, "dashboard/jobs.html", context)


def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    job = with_progress(ValidatorJob.objects.filter(job_id=job_id)).first()
    history = job_history(job_id)
    if job is None and not history:
        raise Http404("no such job")
    failure = job.failure if job is not None and isinstance(job.failure, dict) else None
    context = {
        "job_id": job_id,
        "job": job,
        "history": history,
        "total": history[-1].since_start if history else None,
        "failure": failure,
        "failure_fields": [(name, failure.get(name)) for name in FAILURE_FIELDS if failure and failure.get(name)],
        "decisions": RoutingDecision.objects.filter(job_id=job_id).order_by("at", "id"),
        "receipts": ReceiptRecord.objects.filter(job_id=job_id).order_by("at", "id"),
        "incidents": Incident.objects.filter(job_id=job_id).order_by("at"),
    }
    return render(request, "dashboard/job.html", context)
