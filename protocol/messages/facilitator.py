"""Facilitator ↔ validator and facilitator ↔ client-event messages (DESIGN.md §3)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.messages.base import Message
from protocol.messages.jobs import JobContext, JobFailure, JobResult, StreamingEndpoint
from protocol.status import JobStatus

__all__ = [
    "JobCreate",
    "JobNew",
    "JobReceived",
    "JobStatusAck",
    "JobStatusUpdate",
    "JobUnwatch",
    "JobWatch",
    "StatusKey",
]

_JOB_ID = Field(min_length=1, max_length=64)


class JobNew(Message):
    """Facilitator → validator: a signed job to run (redelivered until acknowledged)."""

    type: Literal["job.new"] = "job.new"
    job_id: str = _JOB_ID
    spec: dict[str, Any]
    client_hotkey: str
    client_signature: str
    context: JobContext = Field(default_factory=JobContext)
    miner: str | None = None


class JobReceived(Message):
    """Validator → facilitator: stop redelivering this job."""

    type: Literal["job.received"] = "job.received"
    job_id: str = _JOB_ID


class JobStatusUpdate(Message):
    """One status change; validator → facilitator, and facilitator → client as-is.

    ``retrying``: this ``infra_failed`` ends one attempt, and the job goes on as the next one
    (only an update that is terminal and not retrying ends a job: ``protocol.status.is_final``).
    ``detail`` is free-form and read by no party. For the clients that read ``detail.retrying``
    (SDKs before the typed field) a retrying update still carries ``detail == {"retrying": true}``
    on the wire, and an update that only has ``detail.retrying`` (a validator before the field)
    reads as ``retrying``; the two must agree.
    """

    type: Literal["job.status"] = "job.status"
    job_id: str = _JOB_ID
    status: JobStatus
    attempt: int = Field(1, ge=0, le=2**31 - 1)  # stored in an integer column
    miner: str | None = None
    at: float
    result: JobResult | None = None
    failure: JobFailure | None = None
    streaming: StreamingEndpoint | None = None
    retrying: bool = False
    detail: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _mirror_retrying(cls, data: Any) -> Any:
        # The compatible shape of the retry flag: the typed field, mirrored in ``detail``.
        if not isinstance(data, dict):
            return data
        detail = data.get("detail")
        legacy = detail.get("retrying") if isinstance(detail, dict) else None
        if not isinstance(legacy, bool):
            legacy = None  # not the flag: free-form detail like any other
        if "retrying" not in data:
            if legacy is None:
                return data
            return {**data, "retrying": legacy}
        retrying = data["retrying"]
        if legacy is not None and legacy != retrying:
            raise ValueError("detail.retrying disagrees with retrying")
        if retrying is True and legacy is None:
            return {**data, "detail": {**(detail if isinstance(detail, dict) else {}), "retrying": True}}
        return data


class StatusKey(BaseModel):
    """What identifies one status update: a job's status in one attempt (statuses are idempotent by it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = _JOB_ID
    attempt: int = Field(ge=0, le=2**31 - 1)
    status: JobStatus

    @classmethod
    def of(cls, update: JobStatusUpdate) -> StatusKey:
        return cls(job_id=update.job_id, attempt=update.attempt, status=update.status)

    def key(self) -> tuple[str, int, str]:
        return (self.job_id, self.attempt, self.status.value)


class JobStatusAck(Message):
    """Facilitator → validator: these statuses are stored (or were already); stop resending them.

    The validator keeps every status until it is acknowledged and sends the unacknowledged ones
    again on each reconnect, so a facilitator that dies with updates in flight loses none.
    """

    type: Literal["job.status_ack"] = "job.status_ack"
    statuses: list[StatusKey] = Field(max_length=10_000)


class JobCreate(Message):
    """Client → facilitator, on the event stream: create this signed job and watch it.

    What ``POST /api/v1/jobs`` does with the same ``{job_id, spec, signature}``, without a signed
    request of its own: the stream's handshake proved the hotkey. Answered with the job's events
    (``sent`` first), or with an ``error`` whose ``ref`` is the job id and whose code is the REST
    refusal's (``invalid_spec``, ``bad_job_signature``, ``invalid_input``, ``conflict``, ...).
    A repeat of the same signed job is a safe retry: it is watched, its history replayed.
    """

    type: Literal["job.create"] = "job.create"
    job_id: str = _JOB_ID
    spec: dict[str, Any]
    signature: str = Field(max_length=256)


class JobWatch(Message):
    """Client → facilitator: push me these jobs' history, then every new status."""

    type: Literal["job.watch"] = "job.watch"
    job_ids: list[str] = Field(min_length=1, max_length=1000)


class JobUnwatch(Message):
    type: Literal["job.unwatch"] = "job.unwatch"
    job_ids: list[str] = Field(min_length=1, max_length=1000)
