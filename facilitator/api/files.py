"""``/api/v1/uploads`` and ``/api/v1/jobs/{id}/files/{path}``: the client's side of the object store.

No data passes through these views: they hand out signed URLs, and the bytes go straight to
the store (the facilitator's own ``/objects/`` for the local store, the S3 server for ``s3``).
Keys follow :mod:`facilitator.links`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router

from facilitator.api.errors import ApiError, refusals
from facilitator.api.jobs import own_job
from facilitator.api.schemas import FileOut, UploadIn, UploadOut
from facilitator.links import LOG_STREAMS, log_key, output_key, upload_key
from facilitator.storage import WRITE_ONCE_HEADERS, get_store
from protocol.status import JobStatus

router = Router(tags=["files"])
log = logging.getLogger("grid.facilitator")

UPLOAD_URL_EXPIRY_S = 3600
DOWNLOAD_URL_EXPIRY_S = 3600
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _signed(key: str, method: str, expires_s: int) -> tuple[str, datetime]:
    # The store adds expires_s to its own clock, read just after ours: the true expiry is never earlier.
    now = int(time.time())
    return get_store().signed_url(key, method, expires_s), datetime.fromtimestamp(now + expires_s, UTC)


@router.post(
    "/uploads",
    response={200: UploadOut, **refusals(400, 401, 403, 413)},
    summary="A signed URL to PUT one file into the grid's store",
)
def create_upload(request: HttpRequest, body: UploadIn) -> dict:
    key = upload_key(request.auth, body.filename)
    url, expires_at = _signed(key, "PUT", UPLOAD_URL_EXPIRY_S)
    return {"key": key, "url": url, "headers": WRITE_ONCE_HEADERS, "expires_at": expires_at}


@router.get(
    "/jobs/{job_id}/files/{path:path}",
    response={200: FileOut, **refusals(401, 403, 404, 409)},
    summary="A signed URL to GET a job's stdout, stderr or object output",
)
def get_file(request: HttpRequest, job_id: str, path: str) -> dict:
    """``stdout`` and ``stderr`` of a completed job, or of a failed one that kept them (``failure.logs``);
    the object outputs of a completed job. ``stdout`` and ``stderr`` name the logs, even if the
    job also has an output of that name. 404 `not_found`: no such job of yours, or no such file; 409
    `not_completed`: the job has no files (yet)."""
    job = own_job(request, job_id)
    completed = job.status == JobStatus.COMPLETED
    if path in LOG_STREAMS and (completed or (job.failure or {}).get("logs")):
        record = _record(((job.result if completed else job.failure) or {}).get("logs"), path)
        if record is None:
            if not completed:
                raise ApiError(404, "not_found", f"job {job_id} is {job.status} and kept no {path}")
            # A completed job's empty stream is not uploaded.
            return {"path": path, "url": None, "sha256": EMPTY_SHA256, "size": 0, "expires_at": None}
        key = log_key(job.id, path)
    elif not completed:
        raise ApiError(409, "not_completed", f"job {job_id} has no files: it is {job.status}, not completed")
    else:
        record = _record((job.result or {}).get("outputs"), path)
        if record is None:
            raise ApiError(404, "not_found", f"job {job_id} has no output {path!r}")
        if record.get("kind", "object") != "object":
            raise ApiError(404, "not_found", f"output {path!r} of job {job_id} went to your own URL, not to the store")
        key = output_key(job.id, path)
    if record.get("ref") != key:
        # The record came from a miner: sign only the key this job's file must have, never another.
        log.warning("job %s: its record names %r for %r, expected %r", job_id, record.get("ref"), path, key)
        raise ApiError(404, "not_found", f"job {job_id} has no stored file {path!r}")
    url, expires_at = _signed(key, "GET", DOWNLOAD_URL_EXPIRY_S)
    return {"path": path, "url": url, "sha256": record["sha256"], "size": record["size"], "expires_at": expires_at}


def _record(records: Any, path: str) -> dict[str, Any] | None:
    return next((item for item in records or [] if isinstance(item, dict) and item.get("path") == path), None)
