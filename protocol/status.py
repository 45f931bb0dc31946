"""Job statuses, stages and failure reasons (DESIGN.md §3)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protocol.messages import JobStatusUpdate

__all__ = [
    "PROGRESS_ORDER",
    "TERMINAL_STATUSES",
    "FailureReason",
    "InfraFailureReason",
    "JobState",
    "JobStatus",
    "RejectReason",
    "Stage",
    "fold",
    "is_final",
]


class JobStatus(StrEnum):
    SENT = "sent"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    EXECUTOR_READY = "executor_ready"
    VOLUMES_READY = "volumes_ready"
    STREAMING_READY = "streaming_ready"
    EXECUTION_DONE = "execution_done"
    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"
    INFRA_FAILED = "infra_failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {JobStatus.COMPLETED, JobStatus.REJECTED, JobStatus.FAILED, JobStatus.INFRA_FAILED, JobStatus.CANCELLED}
)

# Statuses in the order a successful job passes them; used to refuse a status going backwards.
PROGRESS_ORDER = {
    status: index
    for index, status in enumerate(
        [
            JobStatus.SENT,
            JobStatus.RECEIVED,
            JobStatus.ACCEPTED,
            JobStatus.EXECUTOR_READY,
            JobStatus.VOLUMES_READY,
            JobStatus.STREAMING_READY,
            JobStatus.EXECUTION_DONE,
        ]
    )
}


@dataclass(frozen=True)
class JobState:
    """What a job's history adds up to: the facilitator's row and the SDK's ``Job`` both hold it.

    ``result`` and ``failure`` are whatever the folded updates carried (``JobResult`` /
    ``JobFailure``), or what the holder started from; the fold never looks inside them.
    """

    status: JobStatus = JobStatus.SENT
    attempt: int = 1
    miner: str | None = None
    result: Any = None
    failure: Any = None


def is_final(item: JobStatusUpdate | JobState | JobStatus | str) -> bool:
    """Whether ``item`` ends its job: a terminal update that is not ``retrying``, or a terminal state.

    A retried attempt's ``infra_failed`` is history, not the job's end; a job's state is never
    that update (:func:`fold` moves it to the next attempt), so a terminal state is final.
    """
    if isinstance(item, str):  # JobStatus is a StrEnum
        return JobStatus(item).is_terminal
    return JobStatus(item.status).is_terminal and not getattr(item, "retrying", False)


def fold(state: JobState, update: JobStatusUpdate) -> JobState:
    """The state after ``update``: one rule for every holder of a job's history.

    - A final state never changes (an ended job stays as it ended, e.g. a miner finishing
      after a cancel).
    - An update of an earlier attempt changes nothing (a late frame of a superseded attempt).
    - A ``retrying`` update ends its attempt: the job is ``sent`` again, as the next attempt.
    - Otherwise the job moves forward only: to a later attempt, to a terminal status, or to a
      status later in :data:`PROGRESS_ORDER` within the same attempt.

    The fold is idempotent (folding an update twice is folding it once), so a redelivered or
    replayed update is harmless whatever order the history arrives in.
    """
    if is_final(state) or update.attempt < state.attempt:
        return state
    if update.retrying:
        return replace(state, status=JobStatus.SENT, attempt=update.attempt + 1)
    moves = (
        update.attempt > state.attempt
        or update.status.is_terminal
        or PROGRESS_ORDER.get(update.status, 0) > PROGRESS_ORDER.get(state.status, 0)
    )
    if not moves:
        return state
    return JobState(
        status=update.status,
        attempt=update.attempt,
        miner=update.miner or state.miner,
        result=update.result if update.result is not None else state.result,
        failure=update.failure if update.failure is not None else state.failure,
    )


class Stage(StrEnum):
    """The stage a job was in; each has its own time limit (``JobTiming``)."""

    RESERVATION = "reservation"
    EXECUTOR_START = "executor_start"
    DOWNLOAD = "download"
    EXECUTION = "execution"
    UPLOAD = "upload"
    STREAMING_START = "streaming_start"


class FailureReason(StrEnum):
    """Why a job ended ``failed``: the job's own fault."""

    NONZERO_EXIT = "nonzero_exit"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    COMMAND_NOT_FOUND = "command_not_found"
    IMAGE_NOT_FOUND = "image_not_found"
    DOWNLOAD_FAILED = "download_failed"  # an input could not be fetched (HTTP error, timeout, digest mismatch)
    INPUT_TOO_LARGE = "input_too_large"  # an input (or a zip's content) is over the miner's size limits
    INPUT_REFUSED = "input_refused"  # an unsafe input: an escaping archive, a private address, a bad zip
    UPLOAD_FAILED = "upload_failed"  # an output could not be sent where the spec said
    OUTPUT_MISSING = "output_missing"  # the job did not write a file the spec lists as an output
    OUTPUT_TOO_LARGE = "output_too_large"  # stdout/stderr, outputs or artifacts over the miner's limits
    STREAMING_NOT_READY = "streaming_not_ready"  # a streaming job did not answer GET /health in time
    INVALID_SPEC = "invalid_spec"
    BAD_SIGNATURE = "bad_signature"


class InfraFailureReason(StrEnum):
    """Why a job ended ``infra_failed``: the grid's fault; retried on another miner."""

    EXECUTOR_DISCONNECTED = "executor_disconnected"
    EXECUTOR_START_FAILED = "executor_start_failed"
    MINER_DISCONNECTED = "miner_disconnected"
    STAGE_TIMEOUT = "stage_timeout"
    VALIDATOR_RESTARTED = "validator_restarted"
    INTERNAL_ERROR = "internal_error"
    GPU_LOST = "gpu_lost"  # a GPU of the executor stopped answering while the job ran


class RejectReason(StrEnum):
    """Why a job ended ``rejected``: no miner took it."""

    NO_MINER = "no_miner"
    BUSY = "busy"
    UNKNOWN_EXECUTOR_CLASS = "unknown_executor_class"
    LIMITS_EXCEED_CLASS = "limits_exceed_class"  # the job asks more cpu/memory than one executor of its class has
    NO_STREAMING_PORT = "no_streaming_port"  # every gateway port of the miners is taken
    NO_VALIDATOR = "no_validator"
