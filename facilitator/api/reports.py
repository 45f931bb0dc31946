"""``/api/v1/jobs/{job_id}/reports`` (file one, list them) and ``/api/v1/reports/{report_id}``: malicious-miner reports.

Both are signed requests; a client sees only its own reports (another's is a 404, as for jobs).
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status

from facilitator.api.errors import ApiError, refusals
from facilitator.api.jobs import own_job
from facilitator.models import MaliciousReportRecord
from facilitator.reports import ReportRefused, forward, is_report_id, report_out, submit_report
from protocol.reports import MaliciousReport

router = Router(tags=["reports"])


class ReportOut(Schema):
    report_id: str
    job_id: str
    status: str
    reason: str | None
    message: str | None
    miner_hotkey: str | None
    blacklisted_until: float | None
    created_at: datetime
    decided_at: datetime | None


@router.post(
    "/jobs/{job_id}/reports",
    response={202: ReportOut, **refusals(400, 401, 403, 404, 409, 413, 422)},
    summary="Report the miner of one of your jobs, with the job's signed replies as evidence",
    description="400 `invalid_request` (the body outside this schema), `job_mismatch` (the report names "
    "another job than the URL); 403 `wrong_client` (the report is signed for another client); 404 `not_found`; "
    "409 `no_validator` (the job has none yet); 422: the report's or its evidence's signature does not verify.",
)
def create(request: HttpRequest, job_id: str, body: MaliciousReport) -> Status:
    try:
        record, created = submit_report(request.auth, job_id, body)
    except ReportRefused as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    if created:
        forward(record)
    return Status(202, report_out(record))


class ReportList(Schema):
    reports: list[ReportOut]


@router.get(
    "/jobs/{job_id}/reports",
    response={200: ReportList, **refusals(401, 403, 404)},
    summary="Your reports about one of your jobs, oldest first",
    description="404 `not_found`: no such job of yours.",
)
def list_reports(request: HttpRequest, job_id: str) -> dict:
    own_job(request, job_id)
    records = MaliciousReportRecord.objects.filter(job_id=job_id, client_hotkey=request.auth).order_by("created_at")
    return {"reports": [report_out(record) for record in records]}


@router.get(
    "/reports/{report_id}",
    response={200: ReportOut, **refusals(401, 403, 404)},
    summary="A report of yours and the validator's outcome",
)
def get(request: HttpRequest, report_id: str) -> dict:
    record = (
        MaliciousReportRecord.objects.filter(id=report_id, client_hotkey=request.auth).first()
        if is_report_id(report_id)
        else None
    )
    if record is None:
        raise ApiError(404, "not_found", f"no report {report_id}")
    return report_out(record)
