"""Facilitator ↔ validator and facilitator ↔ client-event messages (DESIGN.md §3)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.messages.base import Message
from protocol.messages.jobs import JobContext, JobFailure, JobResult, StreamingEndpoint
from protocol.status import JobStatus

__all__ = ["JobNew", "JobReceived", "JobStatusAck", "JobStatusUpdate", "JobUnwatch", "JobWatch", "StatusKey"]

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
    """One status change; validator → facilitator, and facilitator → client as-is."""

    type: Literal["job.status"] = "job.status"
    job_id: str = _JOB_ID
    status: JobStatus
    attempt: int = Field(1, ge=0, le=2**31 - 1)  # stored in an integer column
    miner: str | None = None
    at: float
    result: JobResult | None = None
    failure: JobFailure | None = None
    streaming: StreamingEndpoint | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


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


class JobWatch(Message):
    """Client → facilitator: push me these jobs' history, then every new status."""

    type: Literal["job.watch"] = "job.watch"
    job_ids: list[str] = Field(min_length=1, max_length=1000)


class JobUnwatch(Message):
    type: Literal["job.unwatch"] = "job.unwatch"
    job_ids: list[str] = Field(min_length=1, max_length=1000)
