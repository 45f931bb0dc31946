"""``/jobs/ID``: one job, live: its status timeline per attempt, result, logs and files.

``/api/jobs/ID`` is the job as the facilitator has it (fetched afresh: history, result,
failure) plus ``files``, what can be downloaded; ``/jobs/ID/files/PATH`` downloads one of them
through the monitor, which signs the call and checks the bytes against the job's recorded
sha256 and size (the SDK's :meth:`~facilitator_sdk.AsyncClient.download`). Inline artifacts come
from the result itself. ``reports`` are the client's malicious-miner reports about the job and
their outcomes. Receipts are not shown: they are signed between the job's validator and miner,
and the facilitator holds none (docs/integrity.md).
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facilitator_sdk import GridError, NotFoundError
from facilitator_sdk.job import AsyncJob
from grid.monitor.http import Request, Response, Route, Streaming, error, html, json_response
from grid.monitor.pages.layout import page
from protocol.status import JobStatus

if TYPE_CHECKING:
    from grid.monitor.app import Monitor

__all__ = ["files", "routes"]

JOB = r"(?P<job_id>[0-9A-Za-z_.-]{1,64})"
CHUNK = 64 * 1024

BODY = """<h1>Job <code id="job-id" data-job="{job_id}">{job_id}</code>
  <span id="job-status" class="status">…</span></h1>
<p id="feed-error" class="error" hidden></p>
<dl id="facts" class="facts"></dl>
<p id="failure" class="error" hidden></p>
<section><h2>Timeline</h2><div id="timeline"></div></section>
<section><h2>Files</h2><ul id="files" class="files"></ul><p id="files-empty" class="muted">None yet.</p></section>
<section><h2>Reports</h2><ul id="reports" class="files"></ul><p id="reports-empty" class="muted">None.</p></section>
<section><h2>stdout</h2><pre id="stdout" class="log"></pre></section>
<section><h2>stderr</h2><pre id="stderr" class="log"></pre></section>
"""


def files(data: dict[str, Any]) -> list[dict[str, Any]]:
    """What of the job can be downloaded: ``[{path, size, kind}]`` (logs, object outputs, inline artifacts)."""
    result = data.get("result") or {}
    found: dict[str, dict[str, Any]] = {}
    for record in [*result.get("logs", []), *result.get("outputs", [])]:
        found[record["path"]] = {"path": record["path"], "size": record.get("size"), "kind": record.get("kind", "")}
    for path, content in result.get("artifacts", {}).items():
        found.setdefault(path, {"path": path, "size": len(content) * 3 // 4, "kind": "artifact"})
    if not result and data.get("status") in (JobStatus.FAILED, JobStatus.INFRA_FAILED):
        for stream in ("stdout", "stderr"):  # a failed job may have kept its logs
            found[stream] = {"path": stream, "size": None, "kind": "log"}
    return list(found.values())


def routes(monitor: Monitor) -> list[Route]:
    feed = monitor.feed

    async def fetch(job_id: str) -> AsyncJob | Response:
        try:
            return await feed.job(job_id)
        except NotFoundError:
            return error(404, "not_found", f"no job {job_id} of yours on {monitor.facilitator_url}")
        except GridError as exc:
            return error(502, "facilitator_error", str(exc))

    async def show(request: Request) -> Response:
        job_id = request.params["job_id"]
        return html(page(f"Job {job_id}", BODY.format(job_id=job_id), "job.js", monitor.facilitator_url))

    async def detail(request: Request) -> Response:
        job = await fetch(request.params["job_id"])
        if isinstance(job, Response):
            return job
        data = job.to_dict()
        try:
            reports = [report.to_dict() for report in await monitor.feed.client.list_reports(job.job_id)]
        except GridError as exc:
            return error(502, "facilitator_error", str(exc))
        return json_response(
            {**data, "files": files(data), "reports": reports, "executor_class": job.spec.get("executor_class")}
        )

    async def download(request: Request) -> Response | Streaming:
        job = await fetch(request.params["job_id"])
        if isinstance(job, Response):
            return job
        path = request.params["path"]
        offered = {item["path"] for item in files(job.to_dict())}
        if path not in offered:
            return error(404, "not_found", f"job {job.job_id} has no file {path!r}")
        name = os.path.basename(path) or "file"
        headers = {"content-disposition": f'attachment; filename="{_quoted(name)}"'}
        inline = ((job.to_dict().get("result") or {}).get("artifacts") or {}).get(path)
        if inline is not None:
            return Response(base64.b64decode(inline), content_type="application/octet-stream", headers=headers)
        folder = Path(tempfile.mkdtemp(prefix="grid-monitor-"))
        try:
            written = await job.download(path, folder / "file")
        except GridError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            status = 404 if isinstance(exc, NotFoundError) else 502
            return error(status, "download_failed", f"cannot download {path} of job {job.job_id}: {exc}")
        headers["content-length"] = str(written.stat().st_size)
        return Streaming(_read_then_remove(written, folder), "application/octet-stream", headers=headers)

    return [
        Route(rf"/jobs/{JOB}", show),
        Route(rf"/api/jobs/{JOB}", detail),
        Route(rf"/jobs/{JOB}/files/(?P<path>.+)", download),
    ]


def _quoted(name: str) -> str:
    return "".join(char if char.isascii() and char.isprintable() and char not in '"\\' else "_" for char in name)


async def _read_then_remove(path: Path, folder: Path) -> AsyncIterator[bytes]:
    try:
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk
    finally:
        shutil.rmtree(folder, ignore_errors=True)
