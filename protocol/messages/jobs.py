"""Job messages, shared by the validator↔miner and miner↔executor hops (DESIGN.md §3)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.messages.base import Message
from protocol.status import Stage

__all__ = [
    "ClassCapacity",
    "ExecutionDone",
    "ExecutorReady",
    "JobAccepted",
    "JobCancel",
    "JobDeclined",
    "JobFailed",
    "JobFailure",
    "JobFinished",
    "JobFull",
    "JobInfraFailed",
    "JobInitial",
    "JobResult",
    "Manifest",
    "OutputRecord",
    "VolumesReady",
]

_JOB_ID = Field(min_length=1, max_length=64)


class _Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputRecord(_Value):
    path: str
    sha256: str
    size: int
    ref: str | None = None


class JobResult(_Value):
    """What a completed job produced."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: float = 0.0
    outputs: list[OutputRecord] = Field(default_factory=list)
    artifacts: dict[str, str] = Field(default_factory=dict)


class JobFailure(_Value):
    """Why a job did not complete; ``reason`` is a FailureReason, InfraFailureReason or RejectReason value."""

    reason: str
    message: str
    stage: Stage | None = None
    exit_code: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    reported_by: str | None = None


class ClassCapacity(_Value):
    total: int = Field(ge=0)
    free: int = Field(ge=0)


class Manifest(Message):
    """Miner → validator, on connect and whenever capacity changes."""

    type: Literal["manifest"] = "manifest"
    classes: dict[str, ClassCapacity]


class JobInitial(Message):
    """Enough for the miner to reserve an executor and for the executor to prepare."""

    type: Literal["job.initial"] = "job.initial"
    job_id: str = _JOB_ID
    attempt: int = Field(1, ge=1)
    executor_class: str
    image: str | None = None
    timing: dict[str, float] = Field(default_factory=dict)


class JobFull(Message):
    """The whole signed job, sent once the executor is ready."""

    type: Literal["job.full"] = "job.full"
    job_id: str = _JOB_ID
    spec: dict[str, Any]
    client_hotkey: str
    client_signature: str


class JobCancel(Message):
    type: Literal["job.cancel"] = "job.cancel"
    job_id: str = _JOB_ID
    reason: str = "cancelled by client"


class JobAccepted(Message):
    type: Literal["job.accepted"] = "job.accepted"
    job_id: str = _JOB_ID


class JobDeclined(Message):
    type: Literal["job.declined"] = "job.declined"
    job_id: str = _JOB_ID
    reason: str
    message: str = ""


class ExecutorReady(Message):
    type: Literal["executor.ready"] = "executor.ready"
    job_id: str = _JOB_ID


class VolumesReady(Message):
    type: Literal["job.volumes_ready"] = "job.volumes_ready"
    job_id: str = _JOB_ID


class ExecutionDone(Message):
    type: Literal["job.execution_done"] = "job.execution_done"
    job_id: str = _JOB_ID


class JobFinished(Message):
    type: Literal["job.finished"] = "job.finished"
    job_id: str = _JOB_ID
    result: JobResult


class JobFailed(Message):
    """The job's own fault."""

    type: Literal["job.failed"] = "job.failed"
    job_id: str = _JOB_ID
    failure: JobFailure


class JobInfraFailed(Message):
    """The grid's fault: retried on another miner while attempts remain."""

    type: Literal["job.infra_failed"] = "job.infra_failed"
    job_id: str = _JOB_ID
    failure: JobFailure
