"""``/api/v1/jobs``: create, get, list, cancel. Every call is a signed request (see ``auth``)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import HttpRequest
from ninja import Router, Status

from facilitator.api.errors import ApiError
from facilitator.api.schemas import CreateJobIn, JobList, JobOut
from facilitator.jobs import JobConflict, cancel_job, create_job, dispatch, is_job_id, push_event
from facilitator.models import Job
from protocol.status import JobStatus

router = Router(tags=["jobs"])
MAX_OFFSET = 2**31 - 1


def _out(job: Job, with_history: bool = True) -> dict:
    return {
        "job_id": str(job.id),
        "status": job.status,
        "attempt": job.attempt,
        "client_hotkey": job.client_hotkey,
        "validator": job.validator_hotkey or None,
        "miner": job.miner_hotkey or None,
        "spec": job.spec,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "result": job.result,
        "failure": job.failure,
        "history": [event.payload for event in job.events.all()] if with_history else [],
    }


def own_job(request: HttpRequest, job_id: str) -> Job:
    """The caller's job ``job_id``; 404 alike for an unknown job and for another client's."""
    job = Job.objects.filter(id=job_id, client_hotkey=request.auth).first() if is_job_id(job_id) else None
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return job


@router.post("/jobs", response={200: JobOut, 201: JobOut}, summary="Create a signed job")
def create(request: HttpRequest, body: CreateJobIn) -> Status:
    try:
        job, created = create_job(request.auth, body.job_id, body.spec, body.signature)
    except JobConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    if created:
        dispatch(job)
    return Status(201 if created else 200, _out(job))


@router.get("/jobs/{job_id}", response=JobOut, summary="A job, its result and its whole history")
def get(request: HttpRequest, job_id: str) -> dict:
    return _out(own_job(request, job_id))


@router.get("/jobs", response=JobList, summary="Your jobs, newest first")
def list_jobs(
    request: HttpRequest, status: str | None = None, since: datetime | None = None, limit: int = 50, offset: int = 0
) -> dict:
    """``since``: only jobs created at or after it (ISO 8601, or Unix seconds; without a zone, UTC)."""
    if not 1 <= limit <= 500 or offset < 0:
        raise ApiError(400, "invalid_request", "limit must be 1..500 and offset >= 0")
    if offset > MAX_OFFSET:  # past what a database's OFFSET takes
        raise ApiError(400, "invalid_request", f"offset must be at most {MAX_OFFSET}")
    jobs = Job.objects.filter(client_hotkey=request.auth)
    if status:
        if status not in JobStatus.__members__.values():
            raise ApiError(400, "invalid_request", f"unknown status {status!r}")
        jobs = jobs.filter(status=status)
    if since is not None:
        jobs = jobs.filter(created_at__gte=since if since.tzinfo else since.replace(tzinfo=UTC))
    page = list(jobs[offset : offset + limit])
    return {"jobs": [_out(job, with_history=False) for job in page], "count": jobs.count()}


@router.post("/jobs/{job_id}/cancel", response=JobOut, summary="Cancel a job that has not ended")
def cancel(request: HttpRequest, job_id: str) -> dict:
    job = own_job(request, job_id)
    try:
        update = cancel_job(job)
    except JobConflict as exc:
        raise ApiError(409, "already_ended", str(exc)) from None
    push_event(update)
    job.refresh_from_db()
    return _out(job)
