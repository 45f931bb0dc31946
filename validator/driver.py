"""One job through one or more miners, with the validator's stage timers (DESIGN.md §3).

The driver owns the clock: each stage must finish within the spec's limit (plus a leeway for
the hops) or the attempt ends ``infra_failed`` with ``stage_timeout``. An ``infra_failed``
attempt is retried on another miner while ``max_attempts`` allows; a job failure is final
(:func:`validator.routing.retry_or_final`). Which miner, and why none, is
:class:`validator.routing.Router`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from protocol.errors import SignatureError
from protocol.messages import (
    Error,
    ExecutionDone,
    ExecutorReady,
    JobAccepted,
    JobCancel,
    JobContext,
    JobDeclined,
    JobFailed,
    JobFailure,
    JobFinished,
    JobFull,
    JobInfraFailed,
    JobInitial,
    JobResult,
    JobStatusUpdate,
    Message,
    StreamingEndpoint,
    StreamingReady,
    VolumesReady,
)
from protocol.messages.integrity import ReceiptSign
from protocol.receipts import Receipt, ReceiptKind
from protocol.spec import JobSpec
from protocol.status import InfraFailureReason, JobStatus, RejectReason, Stage
from protocol.streaming import verify_readiness
from validator.ledger import NullLedger, result_digest
from validator.miners import CapacityWatch, Inbox, MinerAway, MinerBack, MinerConnection, MinerLost
from validator.routing import MINER_GRACE_S, Router, retry_or_final

__all__ = ["ActiveJob", "JobDriver"]

log = logging.getLogger("grid.validator.driver")
LEEWAY_S = 5.0
# Failures that are the miner's doing (a validator restart is not): each is an incident.
MINER_FAULTS = frozenset(
    {
        InfraFailureReason.EXECUTOR_DISCONNECTED,
        InfraFailureReason.EXECUTOR_START_FAILED,
        InfraFailureReason.MINER_DISCONNECTED,
        InfraFailureReason.STAGE_TIMEOUT,
        InfraFailureReason.INTERNAL_ERROR,
    }
)


@dataclass
class ActiveJob:
    job_id: str
    spec_raw: dict
    spec: JobSpec
    client_hotkey: str
    client_signature: str
    context: JobContext = field(default_factory=JobContext)
    attempt: int = 1
    pinned_miner: str | None = None
    crossval: bool = False  # a re-run on a trusted miner: outputs digested, not uploaded

    @property
    def pin(self) -> str | None:
        """The one miner this attempt may go to: the facilitator's choice, else the client's
        (``spec.miner``); a check run goes to a trusted miner whatever the pin."""
        return None if self.crossval else self.pinned_miner or self.spec.miner


class _AttemptFailed(Exception):
    def __init__(self, failure: JobFailure, infra: bool) -> None:
        super().__init__(failure.message)
        self.failure, self.infra = failure, infra

    @classmethod
    def grid_fault(
        cls, reason: InfraFailureReason, message: str, stage: Stage, reported_by: str = "validator"
    ) -> _AttemptFailed:
        """An ``infra_failed`` attempt (retried elsewhere while attempts remain)."""
        return cls(JobFailure(reason=reason, message=message, stage=stage, reported_by=reported_by), infra=True)


class _Declined(Exception):
    def __init__(self, reason: str, message: str, receipts: list[Receipt] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.receipts = receipts or []


Report = Callable[[JobStatusUpdate], None]


class JobDriver:
    """Args:
    job: the job and its current attempt number.
    miners: returns the miner connections to choose from.
    report: called with every status update (the connector sends them to the facilitator).
    capacity: woken whenever a manifest changes.
    queue_timeout: how long a job waits for a free executor while all of its class are busy.
    ledger: records routing decisions, statuses, receipts and incidents; its reputation
        weighs the routing.
    """

    def __init__(
        self,
        job: ActiveJob,
        miners: Callable[[], list[MinerConnection]],
        report: Report,
        capacity: CapacityWatch | None = None,
        queue_timeout: float = 300.0,
        ledger: NullLedger | None = None,
    ) -> None:
        self.job = job
        self.miners = miners
        self.report = report
        self.capacity = capacity or CapacityWatch()
        self.queue_timeout = queue_timeout
        self.ledger = ledger or NullLedger()
        self.miner: MinerConnection | None = None
        self.declined: _Declined | None = None  # the last refusal that was not "busy"
        self._started = False  # the current attempt was accepted: its receipts are due
        self.routing = Router(job, miners, self.ledger, self.capacity, queue_timeout)
        self._gpus: tuple[str, ...] = ()  # the GPUs of the current attempt's executor
        self.readiness: StreamingEndpoint | None = None  # the last vouched readiness (evidence checks)

    def _status(
        self,
        status: JobStatus,
        *,
        result: JobResult | None = None,
        failure: JobFailure | None = None,
        detail: dict | None = None,
        streaming: StreamingEndpoint | None = None,
        retrying: bool = False,
    ) -> JobStatusUpdate:
        update = JobStatusUpdate(
            job_id=self.job.job_id,
            status=status,
            attempt=self.job.attempt,
            miner=self.miner.hotkey if self.miner else None,
            at=time.time(),
            result=result,
            failure=failure,
            streaming=streaming,
            retrying=retrying,
            detail=detail or {},
        )
        self.ledger.status(update)
        self.report(update)
        return update

    def _rejection(self) -> JobFailure:
        declined = self.declined
        return self.routing.rejection(declined.reason if declined else None, str(declined) if declined else "")

    async def run(self) -> JobStatusUpdate:
        """Drive the job to a terminal status and return that status update."""
        tried: set[str] = set()
        try:
            while True:
                self.miner = await self.routing.wait_for_miner(tried)
                if self.miner is None:
                    return self._status(JobStatus.REJECTED, failure=self._rejection())
                try:
                    result = await self._attempt(self.miner)
                    self._finished(JobStatus.COMPLETED, result)
                    return self._status(JobStatus.COMPLETED, result=result)
                except _Declined as exc:
                    log.info("job %s declined by %s: %s", self.job.job_id, self.miner.hotkey[:12], exc)
                    if exc.reason != RejectReason.BUSY:
                        tried.add(self.miner.hotkey)
                        self.declined = exc
                    elif not self._busy_proven(self.miner, exc):
                        tried.add(self.miner.hotkey)  # an unproven "busy" is an incident: look elsewhere
                    else:  # busy right now (our manifest was stale): wait for capacity like any queued job
                        self.routing.busy.add(self.miner.hotkey)
                    continue
                except _AttemptFailed as exc:
                    tried.add(self.miner.hotkey)
                    self._finished(JobStatus.INFRA_FAILED if exc.infra else JobStatus.FAILED)
                    if exc.infra and exc.failure.reason in MINER_FAULTS:
                        self.ledger.incident(
                            self.miner.hotkey,
                            "infra_failure",
                            self.job.job_id,
                            f"{exc.failure.stage}: {exc.failure.reason}: {exc.failure.message}",
                        )
                    # Retried only on another miner, and only while attempts remain.
                    after = retry_or_final(
                        exc.failure,
                        infra=exc.infra,
                        attempt=self.job.attempt,
                        max_attempts=self.job.spec.max_attempts,
                        elsewhere=self.routing.could_run(tried),
                    )
                    if not after.retry:
                        return self._status(after.status, failure=exc.failure)
                    self._status(JobStatus.INFRA_FAILED, failure=exc.failure, retrying=True)
                    self.job.attempt += 1
        except asyncio.CancelledError:
            if self.miner is not None:
                self.miner.send(JobCancel(job_id=self.job.job_id))
            raise
        finally:
            for miner in self.miners():
                miner.close_inbox(self.job.job_id)

    def _send_receipt(self, miner: MinerConnection, *kinds: ReceiptKind, **finished: object) -> None:
        """Sign receipts of ``kinds`` for the attempt on ``miner``, sent together in one frame."""
        if self._gpus:
            finished["gpus"] = self._gpus  # the GPUs the miner bound the attempt to (its job.accepted)
        made = [
            self.ledger.receipt(
                kind, self.job.job_id, self.job.attempt, miner.hotkey, self.job.spec.executor_class, **finished
            )
            for kind in kinds
        ]
        receipts = [receipt for receipt in made if receipt is not None]
        if receipts:
            miner.send(ReceiptSign(receipt=receipts[0], more=receipts[1:]))

    def _finished(self, status: JobStatus, result: JobResult | None = None) -> None:
        """The ``finished`` receipt of the attempt that just ended on ``self.miner``."""
        if self.miner is None or not self._started:
            return
        fields: dict[str, object] = {"status": status.value}
        if result is not None:
            fields.update(duration_s=result.duration_s, outputs_digest=result_digest(result))
        self._send_receipt(self.miner, ReceiptKind.FINISHED, **fields)

    def _busy_proven(self, miner: MinerConnection, declined: _Declined) -> bool:
        cls = self.job.spec.executor_class
        capacity = miner.manifest.get(cls)
        ours = miner.in_flight(cls) - {self.job.job_id}  # offered by us: no receipt needed, we know
        total = capacity.total if capacity else 0
        return self.ledger.busy_proven(miner.hotkey, cls, declined.receipts, total, known_jobs=ours)

    async def _attempt(self, miner: MinerConnection) -> JobResult:
        job, timing = self.job, self.job.spec.timing
        inbox = miner.open_inbox(job.job_id, job.spec.executor_class, job.attempt)
        self._started, self._gpus = False, ()
        miner.send(
            JobInitial(
                job_id=job.job_id,
                attempt=job.attempt,
                executor_class=job.spec.executor_class,
                image=job.spec.image,
                timing=timing.model_dump(),
                streaming=job.spec.streaming,
                crossval=job.crossval,
            )
        )
        try:
            accepted = await self._expect(inbox, JobAccepted, timing.reservation, Stage.RESERVATION)
            self._gpus = tuple(accepted.gpus) if isinstance(accepted, JobAccepted) else ()
            self._started, self.routing.queued_since = True, None
            self._send_receipt(miner, ReceiptKind.STARTED, ReceiptKind.ACCEPTED)
            self._status(JobStatus.ACCEPTED)
            await self._expect(inbox, ExecutorReady, timing.executor_start, Stage.EXECUTOR_START)
            self._status(JobStatus.EXECUTOR_READY)
            miner.send(
                JobFull(
                    job_id=job.job_id,
                    spec=job.spec_raw,
                    client_hotkey=job.client_hotkey,
                    client_signature=job.client_signature,
                    context=job.context,
                )
            )
            await self._expect(inbox, VolumesReady, timing.download + LEEWAY_S, Stage.DOWNLOAD)
            self._status(JobStatus.VOLUMES_READY)
            if job.spec.streaming:
                ready = await self._expect(
                    inbox, StreamingReady, timing.streaming_start + LEEWAY_S, Stage.STREAMING_START
                )
                assert isinstance(ready, StreamingReady)
                self.readiness = self._vouched(miner, ready)
                self._status(JobStatus.STREAMING_READY, streaming=self.readiness)
            await self._expect(inbox, ExecutionDone, timing.execution + LEEWAY_S, Stage.EXECUTION)
            self._status(JobStatus.EXECUTION_DONE)
            finished = await self._expect(inbox, JobFinished, timing.upload + LEEWAY_S, Stage.UPLOAD)
            assert isinstance(finished, JobFinished)
            return finished.result
        except _AttemptFailed as exc:
            if exc.failure.reason == InfraFailureReason.STAGE_TIMEOUT:
                miner.send(JobCancel(job_id=job.job_id, reason="stage timed out"))
            raise
        finally:
            miner.close_inbox(job.job_id)

    async def _expect(self, inbox: Inbox, wanted: type[Message], limit: float, stage: Stage) -> Message:
        """The next ``wanted`` frame of the attempt, within the stage's ``limit``.

        While the miner's connection is down the job may still run there (the miner holds it,
        miner/holds.py): the stage's clock keeps running, and the miner has :data:`MINER_GRACE_S`
        to come back and say it still runs the job (then the frames we missed follow).
        """
        loop = asyncio.get_running_loop()
        deadline, away_until = loop.time() + limit, None
        while True:
            try:
                async with asyncio.timeout_at(deadline if away_until is None else min(deadline, away_until)):
                    message = await inbox.get()
            except TimeoutError:
                if away_until is not None and loop.time() >= away_until:
                    raise _AttemptFailed.grid_fault(
                        InfraFailureReason.MINER_DISCONNECTED,
                        f"the miner's connection dropped and did not come back within {MINER_GRACE_S:g}s",
                        stage,
                    ) from None
                raise _AttemptFailed.grid_fault(
                    InfraFailureReason.STAGE_TIMEOUT, f"{stage} did not finish within {limit:g}s", stage
                ) from None
            if isinstance(message, wanted):
                return message
            if isinstance(message, MinerAway):
                away_until = loop.time() + MINER_GRACE_S
            elif isinstance(message, MinerBack):
                away_until = None
            else:
                self._raise_for(message, stage)

    def _vouched(self, miner: MinerConnection, ready: StreamingReady) -> StreamingEndpoint:
        """The miner's signed readiness, checked here so a client is never sent one that fails."""
        endpoint = ready.endpoint
        try:
            if endpoint.miner_hotkey != miner.hotkey or endpoint.miner_signature is None:
                raise SignatureError("the readiness is not signed by the job's miner")
            verify_readiness(miner.hotkey, endpoint.readiness, endpoint.miner_signature)
            if endpoint.readiness.job_id != self.job.job_id:
                raise SignatureError("the readiness is for another job")
        except SignatureError as exc:
            raise _AttemptFailed.grid_fault(
                InfraFailureReason.INTERNAL_ERROR, f"streaming readiness refused: {exc.message}", Stage.STREAMING_START
            ) from None
        return endpoint

    def _raise_for(self, message: object, stage: Stage) -> None:
        if isinstance(message, JobDeclined):
            raise _Declined(message.reason, message.message, message.receipts)
        if isinstance(message, JobFailed):
            raise _AttemptFailed(message.failure, infra=False)
        if isinstance(message, JobInfraFailed):
            raise _AttemptFailed(message.failure, infra=True)
        if isinstance(message, MinerLost):
            raise _AttemptFailed.grid_fault(
                InfraFailureReason.MINER_DISCONNECTED,
                "the miner's connection dropped, and the miner no longer runs the job",
                stage,
            )
        if isinstance(message, Error):
            raise _AttemptFailed.grid_fault(
                InfraFailureReason.INTERNAL_ERROR, f"miner error: {message.message} ({message.code})", stage, "miner"
            )
        log.warning("job %s: ignoring %s during %s", self.job.job_id, getattr(message, "type", message), stage)
