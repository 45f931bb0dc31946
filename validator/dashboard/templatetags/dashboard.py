"""Template helpers: times, durations, statuses and links to jobs and miners.

Every hotkey and job id shown comes from the network; these helpers escape it (``format_html``)
and fall back to plain text when it cannot be part of a URL.
"""

from __future__ import annotations

import json
import time

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from validator.dashboard.forms import PERMANENT_S
from validator.dashboard.queries import STATUSES

register = template.Library()


@register.filter
def unixtime(value: float | None, precision: str = "") -> str:
    """A unix time as ``YYYY-MM-DD HH:MM:SS`` UTC (``|unixtime:"ms"`` adds milliseconds)."""
    if value is None:
        return "—"
    try:
        value = float(value)
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))
    except (TypeError, ValueError, OverflowError, OSError):
        return "—"
    return text + (f".{int(value % 1 * 1000):03d}" if precision == "ms" else "")


@register.filter
def duration(seconds: float | None) -> str:
    """Seconds as ``0.4 ms``, ``850 ms``, ``4.2 s``, ``12 min``, ``3.5 h`` or ``2.0 d``."""
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if abs(seconds) < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if abs(seconds) < 1:
        return f"{seconds * 1000:.0f} ms"
    if abs(seconds) < 120:
        return f"{seconds:.1f} s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.0f} min"
    if abs(seconds) < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@register.filter
def until(entry) -> str:
    """When a blacklist entry ends: a time, or "until lifted"."""
    if entry.until - entry.created_at >= PERMANENT_S - 1:
        return "until lifted"
    return unixtime(entry.until)


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@register.simple_tag
def status_badge(status: str) -> str:
    css = status if status in STATUSES else "unknown"
    return format_html('<span class="status status-{}">{}</span>', css, status)


def _short(value: str, length: int = 12) -> str:
    return value if len(value) <= length + 1 else value[:length] + "…"


def _link(view: str, value: str, css: str, length: int) -> str:
    if not value:
        return "—"
    try:
        url = reverse(view, args=[value])
    except NoReverseMatch:  # a value no URL can hold (a slash, say): shown, not linked
        return format_html('<span class="{}" title="{}">{}</span>', css, value, _short(value, length))
    return format_html('<a class="{}" href="{}" title="{}">{}</a>', css, url, value, _short(value, length))


@register.simple_tag
def miner_link(hotkey: str, length: int = 12) -> str:
    return _link("dashboard:miner", hotkey, "hotkey", length)


@register.simple_tag
def job_link(job_id: str, length: int = 12) -> str:
    return _link("dashboard:job", job_id, "job-id", length)
