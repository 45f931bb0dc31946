"""``/api/v1/jobs``: create, get, list, cancel. Every call is a signed request (see ``auth``)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.http import HttpRequest
from ninja import Query, Router, Status

from facilitator.api.auth import claim_nonce, signed_request_nonce_later
from facilitator.api.errors import ApiError, job_refusal, refusals
from facilitator.api.schemas import CreateJobIn, JobList, JobOut, Since
from facilitator.jobs import (
    JobConflict,
    cancel_job,
    is_job_id,
    push_event,
    sent_update,
    take_job,
)
from facilitator.models import Job
from node.signed_requests import verified_request
from protocol.requests import SignedRequest
from protocol.status import JobStatus

router = Router(tags=["jobs"])
MAX_OFFSET = 2**31 - 1


def _out(job: Job, with_history: bool = True, history: list[dict] | None = None) -> dict:
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
        "history": history if history is not None else [e.payload for e in job.events.all()] if with_history else [],
    }


def own_job(request: HttpRequest, job_id: str) -> Job:
    """The caller's job ``job_id``; 404 alike for an unknown job and for another client's."""
    job = Job.objects.filter(id=job_id, client_hotkey=request.auth).first() if is_job_id(job_id) else None
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return job


@router.post(
    "/jobs",
    response={200: JobOut, 201: JobOut, **refusals(400, 401, 403, 409, 413)},
    summary="Create a signed job",
    auth=signed_request_nonce_later,
    description="201 the new job, 200 for a repeat of the same signed job. 400 `invalid_request` (the body "
    "outside this schema), `invalid_spec` (a rule the schema cannot state: see JobSpec), `bad_job_signature`, "
    "`invalid_input` (an object input that is not yours or not in the store); 409 `conflict`: this job id "
    "holds another job.",
)
async def create(request: HttpRequest, body: CreateJobIn) -> Status:
    # Async, with its database work (the request's nonce included) in one trip to the sync
    # thread: the job.dispatch event is then awaited here rather than sent from that thread.
    out, created, routed = await sync_to_async(_create)(verified_request(request), body)
    if routed is not None:
        await get_channel_layer().send(*routed)
    return Status(201 if created else 200, out)


def _create(signed: SignedRequest, body: CreateJobIn) -> tuple[dict, bool, tuple[str, dict[str, Any]] | None]:
    claim_nonce(signed)
    try:
        job, created, routed = take_job(signed.hotkey, body.job_id, body.spec, body.signature)
    except JobConflict as exc:
        raise ApiError(409, *job_refusal(exc)) from None
    if not created:
        return _out(job), False, None
    return _out(job, history=[sent_update(job).model_dump(mode="json")]), True, routed


@router.get(
    "/jobs/{job_id}",
    response={200: JobOut, **refusals(401, 403, 404)},
    summary="A job, its result and its whole history",
)
def get(request: HttpRequest, job_id: str) -> dict:
    return _out(own_job(request, job_id))


@router.get("/jobs", response={200: JobList, **refusals(400, 401, 403)}, summary="Your jobs, newest first")
def list_jobs(
    request: HttpRequest,
    status: JobStatus | None = None,
    since: Since | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET, description="at most what a database's OFFSET takes"),
) -> dict:
    """``since``: only jobs created at or after it (ISO 8601, or Unix seconds; without a zone, UTC)."""
    jobs = Job.objects.filter(client_hotkey=request.auth)
    if status:
        jobs = jobs.filter(status=status)
    if since is not None:
        jobs = jobs.filter(created_at__gte=since if since.tzinfo else since.replace(tzinfo=UTC))
    page = list(jobs[offset : offset + limit])
    return {"jobs": [_out(job, with_history=False) for job in page], "count": jobs.count()}


@router.post(
    "/jobs/{job_id}/cancel",
    response={200: JobOut, **refusals(401, 403, 404, 409)},
    summary="Cancel a job that has not ended",
    description="409 `already_ended`: the job had ended.",
)
def cancel(request: HttpRequest, job_id: str) -> dict:
    job = own_job(request, job_id)
    try:
        update = cancel_job(job)
    except JobConflict as exc:
        raise ApiError(409, "already_ended", str(exc)) from None
    push_event(update)
    job.refresh_from_db()
    return _out(job)
