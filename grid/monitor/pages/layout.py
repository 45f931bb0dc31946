"""The frame every monitor page shares: head, navigation, the live-state badge, the page's script."""

from __future__ import annotations

from html import escape

__all__ = ["NAV", "page"]

NAV = [("/", "Jobs")]  # a page that wants a tab adds itself here (task graphs, later)


def page(title: str, body: str, script: str, facilitator: str) -> str:
    """A whole page; ``body`` is trusted markup (the page module's), ``title`` and ``facilitator`` are escaped."""
    nav = "".join(f'<a href="{href}">{escape(label)}</a>' for href, label in NAV)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)} · grid monitor</title>
<link rel="stylesheet" href="/static/monitor.css">
<link rel="icon" href="data:,">
</head>
<body>
<header class="top">
  <strong>grid monitor</strong>
  <nav>{nav}</nav>
  <span class="muted" title="the facilitator this monitor signs its calls to">{escape(facilitator)}</span>
  <span id="live-state" class="live" data-state="connecting">connecting…</span>
</header>
<main>
{body}
</main>
<script src="/static/common.js"></script>
<script src="/static/{escape(script)}"></script>
</body>
</html>
"""
