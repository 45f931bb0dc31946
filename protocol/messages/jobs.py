"""Job messages, shared by the validator↔miner and miner↔executor hops (DESIGN.md §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from protocol.classes import ClassSpec
from protocol.messages.base import Message
from protocol.receipts import Receipt
from protocol.status import Stage
from protocol.streaming import Readiness

if TYPE_CHECKING:
    from protocol.spec import JobSpec

__all__ = [
    "Capacity",
    "ClassCapacity",
    "ExecutionDone",
    "ExecutorReady",
    "JobAccepted",
    "JobCancel",
    "JobContext",
    "JobDeclined",
    "JobFailed",
    "JobFailure",
    "JobFinished",
    "JobFull",
    "JobInfraFailed",
    "JobInitial",
    "JobReserved",
    "JobResult",
    "JobsRunning",
    "Manifest",
    "OutputRecord",
    "StoreLink",
    "StoreLinks",
    "StreamingEndpoint",
    "StreamingReady",
    "VolumesReady",
]

_JOB_ID = Field(min_length=1, max_length=64)
_Attempt = Annotated[int, Field(ge=1, le=2**31 - 1)]  # stored in an integer column


class _Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class StoreLink(_Value):
    """One signed URL of the grid's store and the key it grants."""

    key: str
    url: str


class StoreLinks(_Value):
    """The store URLs of one job, made by the facilitator (DESIGN.md §6).

    They travel beside the client's signed spec, not inside it: the client cannot know them.
    Each URL is checked by the store that signed it, so a hop that alters one breaks only the
    job it was forwarding, and can reach no other object.
    """

    inputs: dict[str, StoreLink] = Field(default_factory=dict, description="object input path → GET")
    outputs: dict[str, StoreLink] = Field(default_factory=dict, description="object output path → PUT")
    stdout: StoreLink | None = None
    stderr: StoreLink | None = None


class JobContext(_Value):
    """What the facilitator gives a job beside the client's signed spec (``job.new``, ``job.full``).

    Minted by the facilitator for each delivery, unsigned by the client (who cannot know it), and
    carried unchanged by the validator and the miner to the executor. Today the store links;
    the job's later grants (agent credentials, peer endpoints) join it here.
    """

    links: StoreLinks = Field(default_factory=StoreLinks)


class OutputRecord(_Value):
    """One uploaded file: ``ref`` is the store key, or ``None`` for a client's own URL."""

    path: str
    sha256: str
    size: int
    kind: Literal["object", "url"] = "object"
    ref: str | None = None


class JobResult(_Value):
    """What a completed job produced.

    ``stdout`` and ``stderr`` hold the first part of each stream inline; ``logs`` lists them
    uploaded whole (``path`` ``stdout`` / ``stderr``, absent when a stream was empty).
    ``artifacts`` maps the files of the spec's ``artifacts_dir`` to their base64 content.
    """

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: float = 0.0
    outputs: list[OutputRecord] = Field(default_factory=list)
    logs: list[OutputRecord] = Field(default_factory=list)
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
    logs: list[OutputRecord] = Field(default_factory=list, description="stdout/stderr uploaded whole, if they were")


class ClassCapacity(_Value):
    """How many executors of one class a miner has, how many are free, and what each one has."""

    total: int = Field(ge=0)
    free: int = Field(ge=0)
    spec: ClassSpec | None = None


class Manifest(Message):
    """Miner → validator, on connect and whenever capacity changes."""

    type: Literal["manifest"] = "manifest"
    classes: dict[str, ClassCapacity]


class Capacity(Message):
    """Validator → facilitator, on connect and whenever it changes: the executor classes its connected
    miners offer, summed over them (the control plane's partitions, docs/control-plane.md)."""

    type: Literal["capacity"] = "capacity"
    classes: dict[str, ClassCapacity] = Field(max_length=1000)


class JobsRunning(Message):
    """Miner → validator, on every connect right after the manifest: this validator's jobs the
    miner still runs, held since the validator's previous connection dropped (DESIGN.md §3).

    The frames each of them has reported follow, so the validator's driver picks the attempt up
    where it was; it ignores those it already had. A job the validator no longer drives (it
    restarted meanwhile) it cancels. Empty when nothing was held.
    """

    type: Literal["jobs.running"] = "jobs.running"
    jobs: dict[Annotated[str, _JOB_ID], _Attempt] = Field(
        default_factory=dict, max_length=10000, description="job id → attempt"
    )


class JobInitial(Message):
    """Enough for the miner to reserve an executor and for the executor to prepare.

    Every field but ``job_id``, ``attempt`` and ``crossval`` repeats the signed spec (the
    validator fills them from it: :meth:`for_spec`); the executor refuses a job whose spec
    says otherwise (:meth:`disagreement`). Nothing the miner decides rides here: that goes in
    the miner's own ``job.reserved`` around it.
    """

    type: Literal["job.initial"] = "job.initial"
    job_id: str = _JOB_ID
    attempt: _Attempt = 1
    executor_class: str
    image: str | None = None
    timing: dict[str, float] = Field(default_factory=dict)
    streaming: bool = False
    crossval: bool = Field(False, description="a validator's check run: outputs are digested, not uploaded")

    @classmethod
    def for_spec(cls, job_id: str, spec: JobSpec, *, attempt: int = 1, crossval: bool = False) -> JobInitial:
        """The ``job.initial`` of ``spec``: what its executor prepares before the spec itself comes."""
        return cls(
            job_id=job_id,
            attempt=attempt,
            executor_class=spec.executor_class,
            image=spec.image,
            timing=spec.timing.model_dump(),
            streaming=spec.streaming,
            crossval=crossval,
        )

    def disagreement(self, spec: JobSpec) -> str | None:
        """Why this initial is not the one of the signed ``spec`` (the first field that differs), or ``None``.

        The executor prepared what the initial said; it must run what the client signed.
        """
        expected = type(self).for_spec(self.job_id, spec, attempt=self.attempt, crossval=self.crossval)
        for name in ("image", "executor_class", "timing", "streaming"):
            got, want = getattr(self, name), getattr(expected, name)
            if got != want:
                return f"job.initial disagrees with the signed spec: {name} is {got!r}, the spec says {want!r}"
        return None


class JobReserved(Message):
    """Miner → executor: the validator's ``job.initial`` as it came, and what the miner reserved for
    it on its own. ``gateway_port``: the public port of a streaming job's gateway.

    Miner-local: the validator neither sees nor signs any of it.
    """

    type: Literal["job.reserved"] = "job.reserved"
    initial: JobInitial
    gateway_port: int | None = Field(None, ge=1, le=65535)


class JobFull(Message):
    """The whole signed job, sent once the executor is ready."""

    type: Literal["job.full"] = "job.full"
    job_id: str = _JOB_ID
    spec: dict[str, Any]
    client_hotkey: str
    client_signature: str
    context: JobContext = Field(default_factory=JobContext)


class JobCancel(Message):
    """Stop a job. With ``attempt``, only that attempt: a later one of the same job is left alone."""

    type: Literal["job.cancel"] = "job.cancel"
    job_id: str = _JOB_ID
    reason: str = "cancelled by client"
    attempt: _Attempt | None = None


class JobAccepted(Message):
    """``gpus``: the UUIDs of the GPUs the job's executor is bound to (none: a CPU executor); the
    validator writes them into the attempt's receipts."""

    type: Literal["job.accepted"] = "job.accepted"
    job_id: str = _JOB_ID
    gpus: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(default_factory=list, max_length=64)

    @model_serializer(mode="wrap")
    def _omit_no_gpus(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)  # left out when empty: the frame reads as before to older peers
        if not self.gpus:
            data.pop("gpus", None)
        return data


class JobDeclined(Message):
    """``receipts``: a miner declining as ``busy`` shows the receipts of the jobs keeping it busy."""

    type: Literal["job.declined"] = "job.declined"
    job_id: str = _JOB_ID
    reason: str
    message: str = ""
    receipts: list[Receipt] = Field(default_factory=list, max_length=1000)


class ExecutorReady(Message):
    type: Literal["executor.ready"] = "executor.ready"
    job_id: str = _JOB_ID


class VolumesReady(Message):
    type: Literal["job.volumes_ready"] = "job.volumes_ready"
    job_id: str = _JOB_ID


class ExecutionDone(Message):
    type: Literal["job.execution_done"] = "job.execution_done"
    job_id: str = _JOB_ID


class StreamingEndpoint(_Value):
    """Where a streaming job answers, vouched for by its miner (protocol/streaming.py).

    The executor reports it without ``miner_signature``; the miner signs the readiness with its
    hotkey before relaying it, and the client checks that signature and pins ``cert_pem``.
    """

    readiness: Readiness
    cert_pem: str = Field(max_length=16384)
    miner_hotkey: str | None = None
    miner_signature: str | None = None


class StreamingReady(Message):
    """Executor → miner → validator: the job answers at its gateway."""

    type: Literal["job.streaming_ready"] = "job.streaming_ready"
    job_id: str = _JOB_ID
    endpoint: StreamingEndpoint


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
