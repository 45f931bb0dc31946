"""The blacklist: active entries with their reasons, lifting, and blacklisting any hotkey."""

from __future__ import annotations

import time

from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from validator.dashboard.actions import blacklist_miner, lift_entry
from validator.dashboard.forms import HotkeyBlacklistForm
from validator.dashboard.views import redirect_back
from validator.models import BlacklistEntry

__all__ = ["blacklist", "blacklist_lift"]


def blacklist(request: HttpRequest) -> HttpResponse:
    form = HotkeyBlacklistForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        blacklist_miner(data["hotkey"], data["reason"], data["duration"], request.user.get_username())
        messages.success(request, f"Miner {data['hotkey'][:12]}… blacklisted: {data['reason']}")
        return redirect("dashboard:blacklist")
    now = time.time()
    entries = BlacklistEntry.objects.select_related("incident")
    context = {
        "active": entries.filter(lifted_at__isnull=True, until__gt=now).order_by("-created_at"),
        "past": entries.filter(Q(lifted_at__isnull=False) | Q(until__lte=now)).order_by("-created_at")[:50],
        "form": form,
    }
    return render(request, "dashboard/blacklist.html", context, status=400 if form.errors else 200)


@require_POST
def blacklist_lift(request: HttpRequest, entry_id: int) -> HttpResponse:
    entry = get_object_or_404(BlacklistEntry, id=entry_id)
    if lift_entry(entry.id, request.user.get_username()):
        messages.success(request, f"Lifted the blacklisting of miner {entry.miner_hotkey[:12]}… ({entry.reason})")
    else:
        messages.info(request, "That entry was lifted already.")
    return redirect_back(request, "dashboard:blacklist")
