"""One job through its stages (DESIGN.md §5): prepare → ready → full spec → inputs → run → report.

Every stage transition goes through :meth:`JobDriver._enter`, which logs it, so the driver
reads top-down. Failures of the job itself are reported as ``job.failed`` with the stage and
reason; anything unexpected becomes ``job.infra_failed`` so the validator can retry elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from executor.datapolicy import DataPlaneError, DataPolicy
from executor.errors import GpuUnavailable
from executor.gateway import JobGateway
from executor.gpus import CHECK_EVERY_S, assigned, find_source, guarded
from executor.health import free_loopback_port, wait_healthy
from executor.runtimes import Runtime, RuntimeFailure
from executor.runtimes.base import JobDirs, OutputCapture, RunOutcome
from executor.taskgraph import proof
from executor.taskgraph.agent import TaskRun
from executor.taskgraph.chain import ChainUpstream, done_body
from executor.taskgraph.polling_agent import KeptWorker, PollingAgent
from executor.uploads import collect_artifacts, digest_only, upload_logs, upload_outputs
from executor.volumes import fetch_inputs
from protocol.errors import SignatureError
from protocol.messages import (
    Error,
    ExecutionDone,
    ExecutorReady,
    JobCancel,
    JobFailed,
    JobFailure,
    JobFinished,
    JobFull,
    JobInfraFailed,
    JobInitial,
    JobReserved,
    JobResult,
    OutputRecord,
    RelayReply,
    StoreLinks,
    StreamingEndpoint,
    StreamingReady,
    VolumesReady,
)
from protocol.spec import JobSpec, SpecError, parse_spec, verify_job
from protocol.status import FailureReason, InfraFailureReason, Stage
from protocol.transport import Connection, ConnectionLost

__all__ = ["ExecutorConfig", "JobDriver", "job_dir_prefix"]

log = logging.getLogger("grid.executor")
TAIL_BYTES = 4096
# How long a job.full may take to arrive once we reported ready (the validator's clock is stricter).
FULL_SPEC_WAIT_S = 60.0
WORKER_LIFE_S = 86400.0  # a kept worker's longest life; idle, it ends after ExecutorConfig.worker_idle_s


@dataclass
class ExecutorConfig:
    """How this miner runs jobs: output limits, where job directories go, what inputs may reach.

    ``max_output`` bytes of each stream come back inline; ``max_log`` bytes of each are kept and
    uploaded whole (more, and the job is killed: ``output_too_large``).
    """

    max_output: int = 1024 * 1024
    max_log: int = 256 * 1024 * 1024
    work_root: str | None = None
    data: DataPolicy = field(default_factory=DataPolicy)
    streaming_address: str = "127.0.0.1"
    streaming_bind: str | None = None
    gpus: tuple[str, ...] = ()  # this executor's GPUs (UUIDs; docs/gpu.md)
    gpu_check_s: float = CHECK_EVERY_S
    worker_idle_s: float = 30.0  # a batch job's worker kept this long for the session's next batch

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ExecutorConfig:
        """Read ``GRID_EXECUTOR_*`` (docs/configuration.md); malformed values raise ``ValueError``."""
        defaults, policy = cls(), DataPolicy()

        def number(name: str, default: int) -> int:
            value = environ.get(name, "").strip()
            if not value:
                return default
            if not value.isdigit():
                raise ValueError(f"{name} must be a whole number of bytes, got {value!r}")
            return int(value)

        return cls(
            max_output=number("GRID_EXECUTOR_MAX_OUTPUT", defaults.max_output),
            max_log=number("GRID_EXECUTOR_MAX_LOG", defaults.max_log),
            work_root=environ.get("GRID_EXECUTOR_WORK_ROOT") or None,
            streaming_address=environ.get("GRID_STREAMING_ADDRESS") or defaults.streaming_address,
            streaming_bind=environ.get("GRID_STREAMING_BIND") or None,
            gpus=assigned(environ),
            gpu_check_s=float(environ.get("GRID_EXECUTOR_GPU_CHECK_S") or CHECK_EVERY_S),
            worker_idle_s=float(environ.get("GRID_EXECUTOR_WORKER_IDLE_S") or defaults.worker_idle_s),
            data=replace(
                policy,
                allow_private_urls=environ.get("GRID_EXECUTOR_ALLOW_PRIVATE_URLS", "").lower() in ("1", "true", "yes"),
                max_input_bytes=number("GRID_EXECUTOR_MAX_INPUT", policy.max_input_bytes),
                max_output_bytes=number("GRID_EXECUTOR_MAX_UPLOAD", policy.max_output_bytes),
                max_artifact_bytes=number("GRID_EXECUTOR_MAX_ARTIFACTS", policy.max_artifact_bytes),
            ),
        )


def job_dir_prefix(pid: int) -> str:
    """Job directories carry their executor's pid, so its parent can sweep them when it dies."""
    return f"job-{pid}-"


class JobDriver:
    """Drives one job of this executor: the next one its miner reserves it for.

    An executor serves job after job, a new driver each (``python -m executor``); isolation
    between them comes from the runtime (a fresh process or container) and from the job's
    directories, emptied before the next job or made afresh.
    ``reserved`` is the job's ``job.reserved`` when it arrived while the last job was finishing.
    ``warm_up``: warm the runtime up while waiting (the executor's first job only).
    ``dirs``: the last job's directories, emptied (:meth:`JobDirs.reset`), for this job to use;
    after :meth:`run`, ``dirs_kept`` holds this job's, emptied, for the next (``None``: removed).
    """

    def __init__(
        self,
        connection: Connection,
        runtime: Runtime,
        config: ExecutorConfig,
        reserved: JobReserved | None = None,
        *,
        warm_up: bool = True,
        dirs: JobDirs | None = None,
        kept: KeptWorker | None = None,
    ) -> None:
        self.connection = connection
        self.kept = kept  # a batch job's worker, kept between this executor's jobs
        self.dirs = dirs
        self.dirs_kept = dirs  # handed on untouched when no job comes
        self.runtime = runtime
        self.config = config
        self.reserved = reserved
        self.warm_up = warm_up  # the executor's first job warms its runtime up; the next ones find it warm
        self.next_reserved: JobReserved | None = None  # the next job's, if it came before this one ended
        self.reported_end = False  # this executor reported how the job ended (job.finished / job.failed)
        self.stage: Stage | None = None
        self.job_id: str | None = None
        self.crossval = False
        self.gateway_port: int | None = None  # the miner's own: the public port of a streaming job's gateway
        self.cancelled = False
        self._full: asyncio.Queue[JobFull] = asyncio.Queue()
        self._relay: ChainUpstream | None = None  # a batch job's relayed calls, awaiting their replies

    def _enter(self, stage: Stage) -> None:
        log.debug("job %s: %s → %s", self.job_id, self.stage, stage)
        self.stage = stage

    async def _next_reserved(self) -> JobReserved | None:
        """Wait (warm, possibly long) for the job this executor will run, as its miner reserved it.

        ``None``: a ``job.cancel`` came instead (for a job this executor just ended): the miner
        has given up on this executor, which ends rather than wait for a job that cannot come.
        """
        if self.reserved is not None:
            return self.reserved
        while True:
            message = await self.connection.recv()
            if isinstance(message, JobReserved):
                return message
            if isinstance(message, JobCancel):
                return None
            if not isinstance(message, Error):
                await self.connection.send(Error(code="unexpected", message=f"{message.type} before job.reserved"))

    async def _listen(self, drive: asyncio.Task[None]) -> None:
        """While the job is driven, read the miner: ``job.full`` for the driver, ``job.cancel`` stops it."""
        try:
            while True:
                message = await self.connection.recv()
                if isinstance(message, JobCancel) and message.job_id == self.job_id:
                    log.info("job %s cancelled: %s", self.job_id, message.reason)
                    self.cancelled = True
                    drive.cancel()
                    return
                if isinstance(message, JobFull):
                    self._full.put_nowait(message)
                elif isinstance(message, RelayReply) and self._relay is not None and self._relay.answer(message):
                    pass
                elif isinstance(message, JobReserved) and self.reported_end and self.next_reserved is None:
                    # The next job, reserved once this one's end was reported: the miner was
                    # quicker than this job's clean-up. Before that end it is out of turn.
                    self.next_reserved = message
                elif not isinstance(message, Error):
                    await self.connection.send(Error(code="unexpected", message=f"{message.type} not expected now"))
        except ConnectionLost:
            # Nobody is left to report to: stop the job rather than let it run unowned.
            log.warning("job %s: lost the miner", self.job_id)
            self.cancelled = True
            drive.cancel()

    @property
    def may_serve_again(self) -> bool:
        """Whether this executor may take another job: the job ended as the executor reported it.

        A cancelled job, a lost miner or an executor error ends the executor, and the miner
        replaces it, as it counts on (miner/executors/pool.py ``recycle``).
        """
        return self.reported_end and not self.cancelled

    async def run(self) -> None:
        warm_up = asyncio.create_task(self.runtime.warm_up() if self.warm_up else asyncio.sleep(0))
        try:
            reserved = await self._next_reserved()
        except ConnectionLost:
            log.info("the miner closed the connection before a job came")
            warm_up.cancel()
            return
        if reserved is None:
            log.info("cancelled while waiting for a job: ending")
            warm_up.cancel()
            return
        try:
            await warm_up
        except Exception as exc:
            log.warning("warming up the runtime failed: %s", exc)  # prepare() reports what matters
        initial, self.gateway_port = reserved.initial, reserved.gateway_port
        self.job_id = initial.job_id
        self.crossval = initial.crossval  # a validator's check run: digest the outputs, upload nothing
        dirs, self.dirs_kept = self.dirs if self.dirs is not None else self._new_dirs(), None
        drive = asyncio.create_task(self._drive(initial, dirs))
        listen = asyncio.create_task(self._listen(drive))
        try:
            await drive
        except asyncio.CancelledError:
            if not self.cancelled:
                raise
        except ConnectionLost:
            log.warning("job %s: lost the miner", self.job_id)
        except GpuUnavailable as exc:  # the miner's fault: retried elsewhere
            log.error("job %s: %s", self.job_id, exc)
            await self._report_infra(exc.reason, str(exc))
        except Exception as exc:
            log.exception("job %s: executor error", self.job_id)
            await self._report_infra(InfraFailureReason.INTERNAL_ERROR, f"executor error: {exc}")
        finally:
            listen.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionLost):
                await listen
            if self.may_serve_again and dirs.reset():
                self.dirs_kept = dirs
            else:
                shutil.rmtree(dirs.root, ignore_errors=True)

    def _new_dirs(self) -> JobDirs:
        if self.config.work_root:
            os.makedirs(self.config.work_root, mode=0o700, exist_ok=True)
        return JobDirs.create(Path(tempfile.mkdtemp(prefix=job_dir_prefix(os.getpid()), dir=self.config.work_root)))

    async def _drive(self, initial: JobInitial, dirs: JobDirs) -> None:
        self._enter(Stage.EXECUTOR_START)
        try:
            await self.runtime.prepare(initial.image)
        except RuntimeFailure as exc:
            await self._report_failed(exc.reason, str(exc))
            return
        await self._check_gpus()
        await self.connection.send(ExecutorReady(job_id=initial.job_id))

        async with asyncio.timeout(FULL_SPEC_WAIT_S):
            full = await self._full.get()
        spec = await self._check(full, initial)
        if spec is None:
            return

        self._enter(Stage.DOWNLOAD)
        try:
            async with asyncio.timeout(spec.timing.download):
                await fetch_inputs(spec, full.context.links, dirs.volume, dirs.scratch, self.config.data)
        except DataPlaneError as exc:
            await self._report_failed(exc.reason, str(exc))
            return
        except TimeoutError:
            await self._report_failed(
                FailureReason.DOWNLOAD_FAILED,
                f"inputs not fetched within the download limit ({spec.timing.download:g}s)",
            )
            return
        await self.connection.send(VolumesReady(job_id=self.job_id))

        try:
            if spec.tasks is not None:
                self._enter(Stage.EXECUTION)
                outcome = await self._run_tasks(spec, dirs, initial.attempt)
            elif spec.streaming:
                outcome = await self._run_streaming(spec, full.context.links, dirs)
                if outcome is None:
                    return
            else:
                self._enter(Stage.EXECUTION)
                outcome = await self._run_job(spec, dirs)
        except RuntimeFailure as exc:
            await self._report_failed(exc.reason, str(exc))
            return
        # With nothing to upload, the job's end follows in this same turn: both in one message.
        self.connection.send_soon(ExecutionDone(job_id=self.job_id))

        self._enter(Stage.UPLOAD)
        await self._report_outcome(spec, full.context.links, dirs, outcome)

    async def _check_gpus(self) -> None:
        """A GPU executor's devices must answer before it reports ready.

        Raises:
            GpuUnavailable: a device does not answer, or nothing can query them.
        """
        if not self.config.gpus:
            return
        source = find_source()
        if source is None:
            raise GpuUnavailable(
                f"bound to GPU(s) {', '.join(self.config.gpus)}, but neither NVML nor nvidia-smi is here"
            )
        await asyncio.to_thread(source.check, self.config.gpus)

    async def _check(self, full: JobFull, initial: JobInitial) -> JobSpec | None:
        """Verify the client's signature over exactly this job, then the spec itself, then that
        the ``job.initial`` this executor prepared from is the spec's."""
        if full.job_id != self.job_id:
            await self._report_failed(FailureReason.INVALID_SPEC, "job.full is for another job")
            return None
        try:
            verify_job(full.client_hotkey, full.job_id, full.spec, full.client_signature)
        except SignatureError as exc:
            await self._report_failed(FailureReason.BAD_SIGNATURE, f"client signature refused: {exc.message}")
            return None
        try:
            spec = parse_spec(full.spec)
        except SpecError as exc:
            await self._report_failed(FailureReason.INVALID_SPEC, exc.message)
            return None
        disagreement = initial.disagreement(spec)
        if disagreement is not None:
            await self._report_failed(FailureReason.INVALID_SPEC, disagreement)
            return None
        return spec

    async def _run_streaming(self, spec: JobSpec, links: StoreLinks, dirs: JobDirs) -> RunOutcome | None:
        """Start the server job, wait for its health, put the gateway in front, serve until it ends.

        Returns the outcome once the job ended (it exited, its client terminated it, or its time
        ran out), or ``None`` when it never became healthy (already reported).
        """
        self._enter(Stage.STREAMING_START)
        if self.gateway_port is None or spec.streaming_public_key is None:
            raise RuntimeFailure(FailureReason.INVALID_SPEC, "a streaming job needs a gateway port and a client key")
        job_port = free_loopback_port()
        stop = asyncio.Event()
        run = asyncio.create_task(self._run_job(spec, dirs, {"PORT": str(job_port)}, stop=stop))
        try:
            healthy = await wait_healthy(job_port, run, spec.timing.streaming_start)
        except BaseException:
            run.cancel()
            raise
        if not healthy:
            stop.set()
            outcome = await run
            why = (
                f"job exited with code {outcome.exit_code} before answering GET /health"
                if not outcome.terminated
                else f"job did not answer GET /health on its PORT within {spec.timing.streaming_start:g}s"
            )
            logs_to = (links, dirs, spec.timing.upload)
            await self._report_failed(FailureReason.STREAMING_NOT_READY, why, outcome, logs_to=logs_to)
            return None
        gateway = JobGateway(
            str(self.job_id),
            job_port,
            spec.streaming_public_key,
            bind=self.config.streaming_bind or self.config.streaming_address,
            port=self.gateway_port,
            address=self.config.streaming_address,
        )
        try:
            await gateway.start()
            endpoint = StreamingEndpoint(readiness=gateway.readiness, cert_pem=gateway.cert_pem)
            await self.connection.send(StreamingReady(job_id=str(self.job_id), endpoint=endpoint))
            self._enter(Stage.EXECUTION)
            terminated = asyncio.create_task(gateway.terminated.wait())
            terminated.add_done_callback(lambda _: stop.set())
            try:
                return await run
            finally:
                terminated.cancel()
        except BaseException:
            run.cancel()
            raise
        finally:
            await gateway.stop()

    async def _run_tasks(self, spec: JobSpec, dirs: JobDirs, attempt: int) -> RunOutcome:
        """A control-plane batch: its tasks one after another through one worker (executor/taskgraph).

        Each task's end is reported up as it comes (``control.done``, not waited for before the
        next task); the job itself completes once every task was run and every end answered,
        whatever each one's outcome.
        """
        assert spec.tasks is not None and self.job_id is not None
        upstream = ChainUpstream(self.job_id, attempt, self.connection.send, self.config.data, spec.tasks.data)
        self._relay = upstream
        key = (spec.tasks.session_id, tuple(spec.command), spec.image)
        agent = await self.kept.take(key) if self.kept is not None else None
        if agent is not None:
            agent.rebind(dirs, upstream)
        else:
            env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "C.UTF-8", **spec.env}
            # The worker outlives this batch when kept: its own clock is the tasks' max_duration.
            life = spec.model_copy(update={"timing": spec.timing.model_copy(update={"execution": WORKER_LIFE_S})})
            agent = PollingAgent(self.runtime, dirs, life, upstream, env=env, max_output=self.config.max_output)
        started = time.monotonic()
        worker = None
        try:
            for assignment in spec.tasks.tasks:
                refused = proof.refusal(spec.tasks, assignment)
                if refused is not None:  # not run: nobody has shown that its client asked for it
                    log.warning("job %s: task %s refused: %s", self.job_id, assignment.task_id, refused)
                    body = {"task_id": assignment.task_id, "status": "error", "message": f"not run: {refused}"}
                    await upstream.report_end({**body, "outputs": [], "children": []})
                    continue
                run = TaskRun(
                    session_id=spec.tasks.session_id,
                    task_id=assignment.task_id,
                    payload_id=assignment.payload_id,
                    data_dependencies=tuple(assignment.data_dependencies),
                    expected_output_ids=tuple(assignment.expected_output_ids),
                    options=base64.b64decode(assignment.options),
                    attempt=attempt,
                )
                outcome = await agent.run(run)
                await upstream.report_end(done_body(outcome))
            await upstream.ends_reported()
        except BaseException:
            worker = await agent.stop()
            raise
        finally:
            await upstream.close()
            self._relay = None
        if self.kept is not None and agent.running:
            self.kept.keep(key, agent)
        else:
            worker = await agent.stop()
        empty = OutputCapture(self.config.max_output)
        return RunOutcome(
            exit_code=0,
            stdout=worker.stdout if worker else empty,
            stderr=worker.stderr if worker else empty,
            duration_s=time.monotonic() - started,
        )

    async def _run_job(
        self, spec: JobSpec, dirs: JobDirs, extra_env: dict[str, str] | None = None, stop: asyncio.Event | None = None
    ) -> RunOutcome:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            **spec.env,
            "GRID_JOB_ID": str(self.job_id),
            "GRID_INPUT_DIR": str(dirs.volume),
            "GRID_OUTPUT_DIR": str(dirs.output),
            **({"GRID_GPUS": ",".join(self.config.gpus)} if self.config.gpus else {}),
            **(extra_env or {}),
        }

        def run(halt: asyncio.Event | None) -> Awaitable[RunOutcome]:
            return self.runtime.run(
                spec, dirs, env, max_output=self.config.max_output, max_log=self.config.max_log, stop=halt
            )

        source = find_source() if self.config.gpus else None
        if source is None:
            return await run(stop)
        # A GPU lost mid-job ends it infra_failed (gpu_lost), not as the job's own failure.
        return await guarded(run, source, self.config.gpus, stop, self.config.gpu_check_s)

    async def _report_outcome(self, spec: JobSpec, links: StoreLinks, dirs: JobDirs, outcome: RunOutcome) -> None:
        logs_to = (links, dirs, spec.timing.upload)
        failure = _run_failure(outcome, self.config.max_log, streaming=spec.streaming)
        if failure is not None:
            await self._report_failed(*failure, outcome, stage=Stage.EXECUTION, logs_to=logs_to)
            return
        try:
            async with asyncio.timeout(spec.timing.upload):
                artifacts = collect_artifacts(spec, dirs.output, self.config.data)
                if self.crossval:
                    outputs, logs = await digest_only(spec, dirs.output, dirs.stdout, dirs.stderr, self.config.data)
                else:
                    outputs = await upload_outputs(spec, links, dirs.output, self.config.data)
                    logs = await upload_logs(links, dirs.stdout, dirs.stderr, self.config.data)
        except DataPlaneError as exc:
            await self._report_failed(exc.reason, str(exc), outcome, logs_to=logs_to)
            return
        except TimeoutError:
            limit = spec.timing.upload
            message = f"outputs not uploaded within the upload limit ({limit:g}s)"
            await self._report_failed(FailureReason.UPLOAD_FAILED, message, outcome)
            return
        result = JobResult(
            exit_code=0,
            stdout=outcome.stdout.text(),
            stderr=outcome.stderr.text(),
            stdout_truncated=outcome.stdout.truncated,
            stderr_truncated=outcome.stderr.truncated,
            duration_s=round(outcome.duration_s, 6),
            outputs=outputs,
            logs=logs,
            artifacts=artifacts,
        )
        self.reported_end = True
        await self.connection.send(JobFinished(job_id=str(self.job_id), result=result))

    async def _report_failed(
        self,
        reason: FailureReason,
        message: str,
        outcome: RunOutcome | None = None,
        stage: Stage | None = None,
        *,
        logs_to: tuple[StoreLinks, JobDirs, float] | None = None,
    ) -> None:
        """Report the job's own failure; with ``logs_to``, upload its stdout/stderr first (best effort)."""
        logs = await self._upload_logs_quietly(*logs_to) if logs_to and outcome else []
        failure = JobFailure(
            reason=reason,
            message=message,
            stage=stage or self.stage,
            exit_code=outcome.exit_code if outcome else None,
            stdout_tail=_tail(outcome.stdout.text()) if outcome else "",
            stderr_tail=_tail(outcome.stderr.text()) if outcome else "",
            reported_by="executor",
            logs=logs,
        )
        self.reported_end = True
        await self.connection.send(JobFailed(job_id=str(self.job_id), failure=failure))

    async def _upload_logs_quietly(self, links: StoreLinks, dirs: JobDirs, limit: float) -> list[OutputRecord]:
        """The logs of a failed job help its owner; failing to upload them must not hide why it failed."""
        try:
            async with asyncio.timeout(limit):
                return await upload_logs(links, dirs.stdout, dirs.stderr, self.config.data)
        except (DataPlaneError, TimeoutError) as exc:
            log.warning("job %s: logs of the failed job not uploaded: %s", self.job_id, exc)
            return []

    async def _report_infra(self, reason: InfraFailureReason, message: str) -> None:
        failure = JobFailure(reason=reason, message=message, stage=self.stage, reported_by="executor")
        try:
            await self.connection.send(JobInfraFailed(job_id=str(self.job_id), failure=failure))
        except ConnectionLost:
            pass


def _run_failure(outcome: RunOutcome, max_log: int, streaming: bool = False) -> tuple[FailureReason, str] | None:
    """Why a finished run counts as the job's failure, or ``None`` if it succeeded.

    A streaming job ends normally when its client terminates it or its time runs out.
    """
    if outcome.output_overflowed:
        return FailureReason.OUTPUT_TOO_LARGE, f"job wrote more than {max_log} bytes to stdout or stderr"
    if streaming and (outcome.terminated or outcome.timed_out):
        return None
    if outcome.timed_out:
        return FailureReason.TIMEOUT, "job exceeded its execution time limit"
    if outcome.out_of_memory:
        return FailureReason.OUT_OF_MEMORY, "job ran out of memory"
    if outcome.exit_code != 0:
        return FailureReason.NONZERO_EXIT, f"job exited with code {outcome.exit_code}"
    return None


def _tail(text: str) -> str:
    return text[-TAIL_BYTES:]
