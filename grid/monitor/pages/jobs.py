"""``/``: the client's jobs, newest first, live; ``/api/jobs[?status=S]``: the same as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from grid.monitor.http import Request, Response, Route, error, html, json_response
from grid.monitor.pages.layout import page
from protocol.status import JobStatus

if TYPE_CHECKING:
    from grid.monitor.app import Monitor

__all__ = ["routes"]

STATUSES = [status.value for status in JobStatus]

BODY = """<h1>Jobs</h1>
<p id="feed-error" class="error" hidden></p>
<form id="filters" class="filters">
  <label>status <select name="status"><option value="">any</option>{options}</select></label>
  <span id="shown" class="muted"></span>
</form>
<table id="jobs" class="jobs">
  <thead><tr><th>job</th><th>status</th><th>class</th><th>miner</th><th>attempt</th>
  <th>created</th><th>total</th><th>ran</th><th>command</th></tr></thead>
  <tbody></tbody>
</table>
<p id="jobs-empty" class="muted" hidden>No jobs yet: submit one with <code>grid job run -- echo hello</code>.</p>
"""


def routes(monitor: Monitor) -> list[Route]:
    async def index(request: Request) -> Response:
        options = "".join(f'<option value="{status}">{status}</option>' for status in STATUSES)
        return html(page("Jobs", BODY.format(options=options), "jobs.js", monitor.facilitator_url))

    async def listing(request: Request) -> Response:
        status = request.query.get("status") or None
        if status is not None and status not in STATUSES:
            return error(400, "invalid_request", f"unknown status {status!r}; one of: {', '.join(STATUSES)}")
        return json_response({"jobs": monitor.feed.listing(status), "error": monitor.feed.error})

    return [Route(r"/", index), Route(r"/api/jobs", listing)]
