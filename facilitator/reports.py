"""Malicious-miner reports on the facilitator (DESIGN.md §8): check, store, forward, record the outcome.

A client reports a miner of one of its jobs with the job's signed replies as evidence. The
facilitator checks what anyone can check (the client signed the report, the evidence verifies,
the job is the client's) and forwards the report to the validator that drives the job, which
alone knows the readiness it vouched for. The report stays ``pending`` until that validator
answers with ``report.outcome``; it is sent again whenever the validator reconnects until then.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from facilitator.jobs import is_job_id
from facilitator.models import Job, MaliciousReportRecord, ValidatorPresence
from protocol.errors import SignatureError
from protocol.messages import ReportMalicious, ReportOutcome
from protocol.reports import MaliciousReport, check_report

__all__ = [
    "ReportRefused",
    "apply_outcome",
    "forward",
    "is_report_id",
    "pending_for",
    "report_out",
    "submit_report",
]

log = logging.getLogger("grid.facilitator")
Status = MaliciousReportRecord.Status


class ReportRefused(Exception):
    """A report the facilitator will not take: ``status`` (HTTP), ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def is_report_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def submit_report(requester: str, job_id: str, report: MaliciousReport) -> tuple[MaliciousReportRecord, bool]:
    """Check ``report`` and store it as pending; return the record and whether it is new.

    The very same signed report sent again returns the stored record (a safe retry).

    Args:
        requester: the hotkey that signed the request.
        job_id: the job named by the URL.

    Raises:
        ReportRefused: the report does not hold; nothing is stored.
    """
    if report.job_id != job_id:
        raise ReportRefused(400, "job_mismatch", f"the report is about job {report.job_id}, not {job_id}")
    if report.client_hotkey != requester:
        raise ReportRefused(
            403, "wrong_client", f"the report is signed for client {report.client_hotkey}, the request by {requester}"
        )
    # Unknown and another client's job alike: a report must not reveal which jobs exist.
    job = Job.objects.filter(id=job_id, client_hotkey=requester).first() if is_job_id(job_id) else None
    if job is None:
        raise ReportRefused(404, "not_found", f"no job {job_id}")
    if not job.validator_hotkey:
        raise ReportRefused(409, "no_validator", f"job {job_id} has no validator yet: nothing to report")
    try:
        check_report(report)
    except SignatureError as exc:
        raise ReportRefused(422, exc.code, f"report refused: {exc.message}") from None
    payload = report.model_dump(mode="json")
    with transaction.atomic():
        existing = MaliciousReportRecord.objects.filter(job=job, report__signature=report.signature).first()
        if existing is not None:
            return existing, False
        record = MaliciousReportRecord.objects.create(
            job=job, client_hotkey=requester, validator_hotkey=job.validator_hotkey, report=payload
        )
    return record, True


def _message(record: MaliciousReportRecord) -> ReportMalicious:
    return ReportMalicious(report_id=str(record.id), report=MaliciousReport.model_validate(record.report))


def forward(record: MaliciousReportRecord) -> bool:
    """Send a pending report to its validator; ``False`` if it is not connected (sent when it is)."""
    presence = ValidatorPresence.objects.filter(hotkey=record.validator_hotkey).first()
    if presence is None or record.status != Status.PENDING:
        return False
    event = {"type": "report.forward", "frame": _message(record).encode()}
    async_to_sync(get_channel_layer().send)(presence.channel_name, event)
    MaliciousReportRecord.objects.filter(id=record.id).update(forwarded_at=timezone.now())
    return True


def pending_for(validator_hotkey: str, limit: int = 500) -> list[ReportMalicious]:
    """The reports still waiting for ``validator_hotkey``'s outcome, oldest first, marked forwarded."""
    records = list(
        MaliciousReportRecord.objects.filter(validator_hotkey=validator_hotkey, status=Status.PENDING).order_by(
            "created_at"
        )[:limit]
    )
    if records:
        MaliciousReportRecord.objects.filter(id__in=[r.id for r in records]).update(forwarded_at=timezone.now())
    return [_message(record) for record in records]


def apply_outcome(validator_hotkey: str, outcome: ReportOutcome) -> bool:
    """Record a validator's outcome; ``False`` (and nothing changes) unless the report was sent to
    that validator and is still pending: a second outcome does not overwrite the first."""
    if not is_report_id(outcome.report_id):
        return False
    decided = MaliciousReportRecord.objects.filter(
        id=outcome.report_id, validator_hotkey=validator_hotkey, status=Status.PENDING
    ).update(
        status=Status.ACCEPTED if outcome.accepted else Status.REFUSED,
        reason=outcome.reason,
        message=outcome.message,
        miner_hotkey=outcome.miner_hotkey or "",
        blacklisted_until=outcome.blacklisted_until,
        decided_at=timezone.now(),
    )
    if not decided:
        log.info("outcome of report %s from %s… ignored", outcome.report_id, validator_hotkey[:12])
    return bool(decided)


def report_out(record: MaliciousReportRecord) -> dict[str, Any]:
    """A report as the API shows it to its client."""
    return {
        "report_id": str(record.id),
        "job_id": str(record.job_id),
        "status": record.status,
        "reason": record.reason or None,
        "message": record.message or None,
        "miner_hotkey": record.miner_hotkey or None,
        "blacklisted_until": record.blacklisted_until,
        "created_at": record.created_at,
        "decided_at": record.decided_at,
    }
