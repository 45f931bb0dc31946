"""Miners: the list (manifest, score, incidents, blacklisting) and one miner's record and forms."""

from __future__ import annotations

import time

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from validator.dashboard.actions import blacklist_miner, lift_miner
from validator.dashboard.forms import BlacklistForm
from validator.dashboard.queries import manifest_classes, miner_rows, with_progress
from validator.dashboard.views import paginate, redirect_back
from validator.models import BlacklistEntry, Incident, MinerRecord, ReceiptRecord, ValidatorJob

__all__ = ["miner_blacklist", "miner_detail", "miner_lift", "miner_list"]


def miner_list(request: HttpRequest) -> HttpResponse:
    page = paginate(request, MinerRecord.objects.order_by("-connected", "hotkey"), per_page=100)
    return render(request, "dashboard/miners.html", {"page": page, "rows": miner_rows(list(page.object_list))})


def _known(hotkey: str) -> bool:
    return any(model.objects.filter(miner_hotkey=hotkey).exists() for model in (Incident, BlacklistEntry, ValidatorJob))


def miner_detail(request: HttpRequest, hotkey: str, form: BlacklistForm | None = None) -> HttpResponse:
    record = MinerRecord.objects.filter(hotkey=hotkey).first()
    if record is None and not _known(hotkey):
        raise Http404("no such miner")
    now = time.time()
    entries = list(BlacklistEntry.objects.filter(miner_hotkey=hotkey).order_by("-created_at"))
    context = {
        "hotkey": hotkey,
        "record": record,
        "row": miner_rows([record], now)[0] if record is not None else None,
        "classes": manifest_classes(record.manifest) if record is not None else [],
        "entries": entries,
        "active": [entry for entry in entries if entry.active(now)],
        "incidents": Incident.objects.filter(miner_hotkey=hotkey).order_by("-at")[:100],
        "receipts": ReceiptRecord.objects.filter(miner_hotkey=hotkey).order_by("-at")[:50],
        "jobs": with_progress(ValidatorJob.objects.order_by("-created_at")).filter(
            Q(miner_hotkey=hotkey) | Q(last_miner=hotkey)
        )[:20],
        "form": form or BlacklistForm(),
    }
    return render(request, "dashboard/miner.html", context, status=400 if form is not None else 200)


@require_POST
def miner_blacklist(request: HttpRequest, hotkey: str) -> HttpResponse:
    if not MinerRecord.objects.filter(hotkey=hotkey).exists() and not _known(hotkey):
        raise Http404("no such miner")
    form = BlacklistForm(request.POST)
    if not form.is_valid():
        return miner_detail(request, hotkey, form=form)
    blacklist_miner(hotkey, form.cleaned_data["reason"], form.cleaned_data["duration"], request.user.get_username())
    messages.success(request, f"Miner {hotkey[:12]}… blacklisted: {form.cleaned_data['reason']}")
    return redirect("dashboard:miner", hotkey)


@require_POST
def miner_lift(request: HttpRequest, hotkey: str) -> HttpResponse:
    lifted = lift_miner(hotkey, request.user.get_username())
    if lifted:
        messages.success(request, f"Miner {hotkey[:12]}…: blacklisting lifted.")
    else:
        messages.info(request, f"Miner {hotkey[:12]}… was not blacklisted.")
    return redirect_back(request, "dashboard:miner", hotkey)
