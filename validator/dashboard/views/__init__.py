"""The dashboard's views, one module per page family; :mod:`validator.dashboard.urls` maps them."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.http import HttpRequest
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

__all__ = ["paginate", "redirect_back"]


def paginate(request: HttpRequest, items, per_page: int = 50) -> Page:
    return Paginator(items, per_page).get_page(request.GET.get("page"))


def redirect_back(request: HttpRequest, fallback: str, *args):
    """To the page the form was on (``next``) if it is one of ours, else to ``fallback``."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect(fallback, *args)
