"""The executor's job driver against an in-memory miner connection (executor/driver.py).

The connection is a stand-in for :class:`protocol.transport.Connection` (``send`` / ``recv``)
backed by queues; the runtime is the real process runtime, so jobs really run.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import shutil
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import load_pem_x509_certificate

from executor.datapolicy import DataPolicy
from executor.driver import TAIL_BYTES, ExecutorConfig, JobDriver
from executor.health import free_loopback_port
from executor.runtimes.process import ProcessRuntime
from protocol.keys import Keypair
from protocol.messages import (
    Error,
    ExecutionDone,
    ExecutorReady,
    JobCancel,
    JobContext,
    JobFailed,
    JobFinished,
    JobFull,
    JobInfraFailed,
    JobInitial,
    JobReserved,
    Message,
    StoreLink,
    StoreLinks,
    StreamingReady,
    VolumesReady,
)
from protocol.requests import sign_request
from protocol.spec import SpecError, new_job_id, parse_spec, sign_job
from protocol.status import FailureReason, Stage
from protocol.streaming import REQUEST_PURPOSE, ReplySeal, cert_fingerprint, verify_reply
from protocol.transport import ConnectionLost
from tests.executor.httpserver import Server

PY = sys.executable

CLIENT = Keypair.generate()
WAIT_S = 3.0


class FakeConnection:
    """The Connection interface in memory: the test puts the miner's messages in, and reads what was sent."""

    peer_hotkey = "00" * 32

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Message | BaseException] = asyncio.Queue()
        self.sent: asyncio.Queue[Message] = asyncio.Queue()

    async def send(self, message: Message) -> None:
        await self.sent.put(message)

    def send_soon(self, message: Message) -> None:
        self.sent.put_nowait(message)  # in order: the real one writes it ahead of the next send

    async def recv(self) -> Message:
        item = await self.incoming.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def feed(self, *messages: Message | BaseException) -> None:
        for message in messages:
            self.incoming.put_nowait(message)

    async def next_sent(self) -> Message:
        return await asyncio.wait_for(self.sent.get(), WAIT_S)

    def all_sent(self) -> list[Message]:
        messages = []
        while not self.sent.empty():
            messages.append(self.sent.get_nowait())
        return messages


class Executor:
    """One JobDriver with its fake miner connection and a work root to check for leftovers."""

    def __init__(self, work_root: Path, **config: Any) -> None:
        self.work_root = work_root
        self.connection = FakeConnection()
        self.driver = JobDriver(
            self.connection,  # type: ignore[arg-type]
            ProcessRuntime(),
            ExecutorConfig(max_output=64 * 1024, work_root=str(work_root), **config),
        )
        self.job_id = new_job_id()
        self.task: asyncio.Task[None] | None = None

    def start(self, *messages: Message | BaseException) -> None:
        self.connection.feed(*messages)
        self.task = asyncio.create_task(self.driver.run())

    async def finish(self) -> list[Message]:
        """Wait for the driver to end; return everything it sent. Its job directory must be gone,
        or kept for the next job with nothing in it (then removed here, as ``serve`` would)."""
        assert self.task is not None
        await asyncio.wait_for(self.task, WAIT_S)
        kept = self.driver.dirs_kept
        if kept is not None:
            assert self.driver.may_serve_again, "kept the directory of a job that ends its executor"
            assert sorted(path.name for path in kept.root.iterdir()) == ["output", "scratch", "tmp", "volume"]
            assert not any(any(path.iterdir()) for path in kept.root.iterdir()), "kept, but not emptied"
            shutil.rmtree(kept.root)
        assert list(self.work_root.iterdir()) == [], "the job's temp directory was left behind"
        return self.connection.all_sent()

    def default_spec(self) -> dict[str, Any]:
        return job("true")

    def initial(self, spec: dict[str, Any] | None = None, *, gateway_port: int | None = None) -> JobReserved:
        """The miner's job.reserved around the job.initial a validator makes of ``spec`` (default
        :meth:`default_spec`). A spec that does not parse gets the default's: the executor refuses
        it before it compares the two."""
        try:
            parsed = parse_spec(spec if spec is not None else self.default_spec())
        except SpecError:
            parsed = parse_spec(self.default_spec())
        return JobReserved(initial=JobInitial.for_spec(self.job_id, parsed), gateway_port=gateway_port)

    def full(
        self,
        spec: dict[str, Any],
        *,
        signed_spec: dict[str, Any] | None = None,
        signer: Keypair = CLIENT,
        links: StoreLinks | None = None,
    ) -> JobFull:
        signature = sign_job(signer, self.job_id, spec if signed_spec is None else signed_spec)
        return JobFull(
            job_id=self.job_id,
            spec=spec,
            client_hotkey=CLIENT.hotkey,
            client_signature=signature,
            context=JobContext(links=links or StoreLinks()),
        )

    async def run(self, spec: dict[str, Any], **full: Any) -> list[Message]:
        self.start(self.initial(spec), self.full(spec, **full))
        return await self.finish()


@pytest.fixture
async def executor(tmp_path: Path) -> AsyncIterator[Executor]:
    work_root = tmp_path / "work"
    work_root.mkdir()
    executor = Executor(work_root)
    yield executor
    if executor.task is not None and not executor.task.done():
        executor.task.cancel()
        await asyncio.gather(executor.task, return_exceptions=True)
        executor.task = None
        # A cancelled run leaves an unretrieved future (see test_runtime_process); finalise it now.
        gc.collect()


def job(*command: str, execution: float = 2.0, **fields: Any) -> dict[str, Any]:
    return {"command": list(command), "timing": {"execution": execution}, **fields}


def types(messages: list[Message]) -> list[type[Message]]:
    return [type(message) for message in messages]


def only_failure(messages: list[Message]) -> JobFailed:
    failed = messages[-1]
    assert isinstance(failed, JobFailed), messages
    return failed


async def test_successful_job_reports_every_stage_then_finishes_with_its_output(executor: Executor) -> None:
    """ready → volumes ready → execution done → finished with stdout/stderr and exit code 0."""
    sent = await executor.run(job("sh", "-c", "echo hello; echo warning >&2"))
    assert types(sent) == [ExecutorReady, VolumesReady, ExecutionDone, JobFinished]
    assert {message.job_id for message in sent} == {executor.job_id}  # type: ignore[attr-defined]
    result = sent[-1].result  # type: ignore[attr-defined]
    assert (result.exit_code, result.stdout, result.stderr) == (0, "hello\n", "warning\n")
    assert not result.stdout_truncated and not result.stderr_truncated
    assert result.duration_s > 0


async def test_job_sees_the_job_contract_and_its_own_env(executor: Executor) -> None:
    """GRID_JOB_ID, GRID_INPUT_DIR and GRID_OUTPUT_DIR are set and the spec's variables passed through."""
    script = (
        'echo "$GRID_JOB_ID|$MODE|${PORT-unset}"; test -d "$GRID_INPUT_DIR" && test -d "$GRID_OUTPUT_DIR" && echo dirs'
    )
    sent = await executor.run(job("sh", "-c", script, env={"MODE": "fast"}))
    assert sent[-1].result.stdout == f"{executor.job_id}|fast|unset\ndirs\n"  # type: ignore[attr-defined]


async def test_inline_inputs_are_written_under_the_input_dir(executor: Executor) -> None:
    """Inline inputs land at their relative paths under GRID_INPUT_DIR before the job starts."""
    inputs = [
        {"kind": "inline", "path": "hello.txt", "content_b64": base64.b64encode(b"hi there").decode()},
        {"kind": "inline", "path": "nested/deep/data.bin", "content_b64": base64.b64encode(b"\x00\x01").decode()},
    ]
    script = 'cat "$GRID_INPUT_DIR/hello.txt"; echo; od -An -tx1 "$GRID_INPUT_DIR/nested/deep/data.bin"'
    sent = await executor.run(job("sh", "-c", script, inputs=inputs))
    assert types(sent) == [ExecutorReady, VolumesReady, ExecutionDone, JobFinished]
    assert sent[-1].result.stdout.split() == ["hi", "there", "00", "01"]  # type: ignore[attr-defined]


async def test_spec_altered_after_signing_fails_with_bad_signature(executor: Executor) -> None:
    """A spec that differs from what the client signed never runs: job.failed, reason bad_signature."""
    signed = job("echo", "hello")
    altered = job("echo", "pwned")
    sent = await executor.run(altered, signed_spec=signed)
    assert types(sent) == [ExecutorReady, JobFailed]
    failure = only_failure(sent).failure
    assert failure.reason == "bad_signature"
    assert failure.stage is Stage.EXECUTOR_START
    assert failure.message == "client signature refused: signature does not verify"
    assert failure.reported_by == "executor"


async def test_spec_signed_by_someone_else_than_the_client_fails_with_bad_signature(executor: Executor) -> None:
    """The signature must be the named client's; a valid signature by another key is refused."""
    sent = await executor.run(job("true"), signer=Keypair.generate())
    assert only_failure(sent).failure.reason == "bad_signature"


async def test_spec_that_does_not_validate_fails_with_invalid_spec(executor: Executor) -> None:
    """A correctly signed but invalid spec is refused with invalid_spec listing the field."""
    sent = await executor.run({"command": [], "env": {"GRID_JOB_ID": "x"}})
    assert types(sent) == [ExecutorReady, JobFailed]
    failure = only_failure(sent).failure
    assert failure.reason == "invalid_spec"
    assert failure.message.startswith("invalid spec: command: ")


async def test_job_full_for_another_job_fails_with_invalid_spec(executor: Executor) -> None:
    """A job.full whose id is not the reserved job's is refused."""
    other = Executor(executor.work_root)
    executor.start(executor.initial(), other.full(job("true")))
    sent = await executor.finish()
    assert types(sent) == [ExecutorReady, JobFailed]
    assert only_failure(sent).failure.reason == "invalid_spec"
    assert only_failure(sent).failure.message == "job.full is for another job"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image", "python:3.12"),
        ("executor_class", "gpu.80gb"),
        ("timing", {"execution": 999.0}),
        ("streaming", True),
    ],
)
async def test_an_initial_that_disagrees_with_the_signed_spec_is_refused_and_nothing_runs(
    executor: Executor, tmp_path: Path, field: str, value: Any
) -> None:
    """The executor prepared what job.initial said; it runs what the client signed, so the two must agree."""
    ran = tmp_path / "ran"
    spec = job("touch", str(ran))
    reserved = executor.initial(spec)
    if field == "timing":
        value = {**reserved.initial.timing, **value}
    altered = reserved.model_copy(update={"initial": reserved.initial.model_copy(update={field: value})})
    executor.start(altered, executor.full(spec))
    sent = await executor.finish()
    assert types(sent) == [ExecutorReady, JobFailed]
    failure = only_failure(sent).failure
    assert (failure.reason, failure.stage) == (FailureReason.INVALID_SPEC, Stage.EXECUTOR_START)
    assert failure.message.startswith(f"job.initial disagrees with the signed spec: {field} is ")
    assert not ran.exists(), "the job ran"


async def test_an_initial_made_from_the_signed_spec_runs(executor: Executor, tmp_path: Path) -> None:
    spec = job("sh", "-c", "echo ok", timing={"execution": 3.0, "upload": 5.0})
    assert executor.initial(spec).initial.timing["upload"] == 5.0
    assert types(await executor.run(spec)) == [ExecutorReady, VolumesReady, ExecutionDone, JobFinished]


async def test_non_zero_exit_fails_with_nonzero_exit_and_the_stderr_tail(executor: Executor) -> None:
    """A job exiting non-zero is job.failed, reason nonzero_exit, with its exit code and output tails."""
    sent = await executor.run(job("sh", "-c", "echo partial; echo 'it broke' >&2; exit 3"))
    assert types(sent) == [ExecutorReady, VolumesReady, ExecutionDone, JobFailed]
    failure = only_failure(sent).failure
    assert failure.reason == "nonzero_exit"
    assert failure.stage is Stage.EXECUTION
    assert failure.exit_code == 3
    assert failure.message == "job exited with code 3"
    assert (failure.stdout_tail, failure.stderr_tail) == ("partial\n", "it broke\n")


async def test_stderr_tail_keeps_the_last_bytes(executor: Executor) -> None:
    """Long stderr is cut to its last TAIL_BYTES characters, where the error usually is."""
    script = "import sys; sys.stderr.write('a' * 10000 + 'END'); sys.exit(1)"
    sent = await executor.run(job("python3", "-c", script))
    tail = only_failure(sent).failure.stderr_tail
    assert len(tail) == TAIL_BYTES
    assert tail.endswith("aEND")


async def test_job_over_its_time_limit_fails_with_timeout(executor: Executor) -> None:
    """A job still running at its execution limit is killed and reported as timeout."""
    sent = await executor.run(job("sh", "-c", "echo started; exec sleep 30", execution=0.5))
    failure = only_failure(sent).failure
    assert failure.reason == "timeout"
    assert failure.stage is Stage.EXECUTION
    assert failure.stdout_tail == "started\n"


async def test_missing_command_fails_with_command_not_found(executor: Executor) -> None:
    """A command that does not exist is the job's fault: job.failed, reason command_not_found."""
    sent = await executor.run(job("gridmarket-no-such-command"))
    assert types(sent) == [ExecutorReady, VolumesReady, JobFailed]
    failure = only_failure(sent).failure
    assert (failure.reason, failure.stage) == ("command_not_found", Stage.EXECUTION)


async def test_cancel_before_the_full_spec_stops_without_running(executor: Executor) -> None:
    """A job.cancel while waiting for job.full ends the driver after executor.ready, with nothing else sent."""
    executor.start(executor.initial(), JobCancel(job_id=executor.job_id))
    assert await executor.finish() == [ExecutorReady(job_id=executor.job_id)]


async def test_lost_connection_ends_the_driver_quietly(executor: Executor) -> None:
    """If the miner goes away, the driver stops and cleans up; there is no one left to report to."""
    executor.start(executor.initial(), ConnectionLost(1006, "gone"))
    assert await executor.finish() == [ExecutorReady(job_id=executor.job_id)]


async def test_unexpected_message_is_answered_with_an_error_and_the_driver_keeps_waiting(executor: Executor) -> None:
    """A message out of turn gets error{unexpected}; error frames from the miner are not answered; the job goes on."""
    executor.start(
        executor.initial(),
        executor.initial(),
        Error(code="whatever", message="miner complaint"),
        executor.full(job("echo", "ok")),
    )
    sent = await executor.finish()
    assert types(sent) == [ExecutorReady, Error, VolumesReady, ExecutionDone, JobFinished]
    assert sent[1] == Error(code="unexpected", message="job.reserved not expected now")


async def test_cancel_during_execution_stops_the_job_without_finishing(executor: Executor) -> None:
    """A job.cancel while the job runs kills it promptly; no execution_done or job.finished follows."""
    spec = job("sleep", "30", execution=1.5)
    executor.start(executor.initial(spec), executor.full(spec))
    assert isinstance(await executor.connection.next_sent(), ExecutorReady)
    assert isinstance(await executor.connection.next_sent(), VolumesReady)
    await asyncio.sleep(0.05)  # the job is running
    executor.connection.feed(JobCancel(job_id=executor.job_id))
    assert executor.task is not None
    done, _ = await asyncio.wait({executor.task}, timeout=0.7)
    assert executor.task in done, "the job kept running after job.cancel"
    sent = await executor.finish()
    assert not any(isinstance(message, ExecutionDone | JobFinished) for message in sent), sent


async def test_command_with_a_nul_byte_is_the_jobs_fault_not_the_grids(executor: Executor) -> None:
    """An argument no process can receive fails the job (job.failed), it does not blame the infrastructure."""
    sent = await executor.run(job("echo", "a\x00b"))
    assert not any(isinstance(message, JobInfraFailed) for message in sent), sent
    assert only_failure(sent).failure.reason in {"invalid_spec", "command_not_found"}


async def test_inline_inputs_with_colliding_paths_are_the_jobs_fault_not_the_grids(executor: Executor) -> None:
    """Inputs that cannot all be written fail the job (job.failed), they do not blame the infrastructure."""
    inputs = [
        {"kind": "inline", "path": "a", "content_b64": ""},
        {"kind": "inline", "path": "a/b", "content_b64": ""},
    ]
    sent = await executor.run(job("true", inputs=inputs))
    assert not any(isinstance(message, JobInfraFailed) for message in sent), sent
    assert only_failure(sent).failure.reason in {"invalid_spec", "download_failed"}


def test_executor_config_reads_the_miners_environment() -> None:
    config = ExecutorConfig.from_env(
        {
            "GRID_EXECUTOR_MAX_OUTPUT": "100",
            "GRID_EXECUTOR_MAX_LOG": "2000",
            "GRID_EXECUTOR_MAX_INPUT": "3000",
            "GRID_EXECUTOR_MAX_UPLOAD": "4000",
            "GRID_EXECUTOR_MAX_ARTIFACTS": "500",
            "GRID_EXECUTOR_ALLOW_PRIVATE_URLS": "true",
            "GRID_EXECUTOR_WORK_ROOT": "/srv/jobs",
        }
    )
    assert (config.max_output, config.max_log, config.work_root) == (100, 2000, "/srv/jobs")
    data = config.data
    assert (data.max_input_bytes, data.max_output_bytes, data.max_artifact_bytes) == (3000, 4000, 500)
    assert data.allow_private_urls is True


def test_executor_config_defaults_refuse_private_urls() -> None:
    config = ExecutorConfig.from_env({})
    assert config.data.allow_private_urls is False and config.work_root is None


@pytest.mark.parametrize("value", ["1e6", "-5", "lots", "1.5"])
def test_executor_config_refuses_a_malformed_limit_naming_it(value: str) -> None:
    with pytest.raises(ValueError, match=f"GRID_EXECUTOR_MAX_LOG must be a whole number of bytes, got '{value}'"):
        ExecutorConfig.from_env({"GRID_EXECUTOR_MAX_LOG": value})


# -- the data plane through the driver -------------------------------------------------------------


def log_links(server: Server) -> StoreLinks:
    return StoreLinks(
        stdout=StoreLink(key="jobs/j/logs/stdout", url=server.route("/stdout", status=200)),
        stderr=StoreLink(key="jobs/j/logs/stderr", url=server.route("/stderr", status=200)),
    )


async def test_a_job_flooding_stdout_is_killed_as_output_too_large_and_its_logs_kept(
    tmp_path: Path, server: Server
) -> None:
    executor = Executor(tmp_path, max_log=100_000)
    flood = "import sys\nwhile True: sys.stdout.write('x' * 65536)"
    messages = await executor.run(job(PY, "-c", flood, execution=20.0), links=log_links(server))
    failure = only_failure(messages).failure
    assert (failure.reason, failure.stage) == (FailureReason.OUTPUT_TOO_LARGE, Stage.EXECUTION)
    assert "more than 100000 bytes" in failure.message
    (uploaded,) = server.bodies("/stdout")
    assert 0 < len(uploaded) <= 100_000, "the log is uploaded up to the limit"
    assert [record.path for record in failure.logs] == ["stdout"]


async def test_a_failed_jobs_logs_are_uploaded_whole_and_listed_in_the_failure(tmp_path: Path, server: Server) -> None:
    executor = Executor(tmp_path)
    script = "import sys; print('o' * 200000); print('bad', file=sys.stderr); sys.exit(4)"
    failure = only_failure(await executor.run(job(PY, "-c", script), links=log_links(server))).failure
    assert failure.reason == FailureReason.NONZERO_EXIT
    assert server.bodies("/stdout") == [b"o" * 200000 + b"\n"]
    assert server.bodies("/stderr") == [b"bad\n"]
    assert {record.path: record.size for record in failure.logs} == {"stdout": 200001, "stderr": 4}


async def test_a_failing_input_download_fails_the_job_in_the_download_stage(tmp_path: Path, server: Server) -> None:
    executor = Executor(tmp_path, data=DataPolicy(allow_private_urls=True, retries=0))
    spec = job("true", inputs=[{"kind": "url", "path": "x", "url": server.url("/missing")}])
    messages = await executor.run(spec)
    failure = only_failure(messages).failure
    assert (failure.reason, failure.stage) == (FailureReason.DOWNLOAD_FAILED, Stage.DOWNLOAD)
    assert not any(isinstance(message, VolumesReady) for message in messages)


async def test_a_slow_download_fails_at_the_spec_download_limit(tmp_path: Path, server: Server) -> None:
    executor = Executor(tmp_path, data=DataPolicy(allow_private_urls=True))
    url = server.route("/slow", b"late", delay=3.0)
    spec = job("true", inputs=[{"kind": "url", "path": "x", "url": url}], timing={"execution": 2.0, "download": 0.5})
    failure = only_failure(await executor.run(spec)).failure
    assert (failure.reason, failure.stage) == (FailureReason.DOWNLOAD_FAILED, Stage.DOWNLOAD)
    assert "download limit (0.5s)" in failure.message


async def test_a_client_url_to_loopback_is_refused_by_default(tmp_path: Path, server: Server) -> None:
    executor = Executor(tmp_path)
    spec = job("true", inputs=[{"kind": "url", "path": "x", "url": server.route("/x", b"secret")}])
    failure = only_failure(await executor.run(spec)).failure
    assert (failure.reason, failure.stage) == (FailureReason.INPUT_REFUSED, Stage.DOWNLOAD)
    assert server.hits["/x"] == 0, "a refused address is never contacted"


# -- streaming jobs: the executor starts the server, fronts it with the gateway, serves until the end


STREAMING_APP = str(Path(__file__).resolve().parents[2] / "examples" / "streaming_echo" / "app.py")
STREAM_KEY = Keypair.generate()


def streaming_spec(**fields: Any) -> dict[str, Any]:
    timing = {"execution": 20.0, "streaming_start": 10.0, **fields.pop("timing", {})}
    return job(PY, STREAMING_APP, streaming=True, streaming_public_key=STREAM_KEY.hotkey, timing=timing, **fields)


def streaming_initial(executor: Executor, spec: dict[str, Any]) -> JobReserved:
    return executor.initial(spec, gateway_port=free_loopback_port())


def signed(method: str, path: str, body: bytes = b"") -> dict[str, str]:
    return sign_request(STREAM_KEY, method, path, "", body, purpose=REQUEST_PURPOSE)


async def test_a_streaming_job_serves_signed_replies_until_its_client_terminates_it(tmp_path: Path) -> None:
    executor = Executor(tmp_path)
    spec = streaming_spec()
    executor.start(streaming_initial(executor, spec), executor.full(spec))
    assert isinstance(await executor.connection.next_sent(), ExecutorReady)
    assert isinstance(await executor.connection.next_sent(), VolumesReady)
    ready = await asyncio.wait_for(executor.connection.sent.get(), 15)
    assert isinstance(ready, StreamingReady)
    readiness = ready.endpoint.readiness
    assert cert_fingerprint(load_pem_x509_certificate(ready.endpoint.cert_pem.encode()).public_bytes(Encoding.DER)) == (
        readiness.cert_fingerprint
    )
    context = ssl.create_default_context(cadata=ready.endpoint.cert_pem)
    context.check_hostname = False
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{readiness.port}", verify=context) as http:
        reply = await http.post("/echo", content=b"ping", headers=signed("POST", "/echo", b"ping"))
        assert (reply.status_code, reply.content) == (200, b"ping")
        seal = ReplySeal(
            request_digest=reply.headers["X-Grid-Request-Digest"],
            status=200,
            reply_digest=hashlib.sha256(b"ping").hexdigest(),
            signature=reply.headers["X-Grid-Reply-Signature"],
        )
        verify_reply(readiness.job_public_key, executor.job_id, seal)
        unsigned = await http.post("/echo", content=b"ping")
        assert unsigned.status_code == 401
        ended = await http.post("/_grid/terminate", headers=signed("POST", "/_grid/terminate"))
        assert ended.status_code == 202
    sent = await executor.finish()
    assert types(sent) == [ExecutionDone, JobFinished], "ended by its client: completed, whatever its exit status"


async def test_a_streaming_job_that_never_answers_health_fails_streaming_not_ready(tmp_path: Path) -> None:
    executor = Executor(tmp_path)
    spec = streaming_spec(timing={"streaming_start": 1.0}, env={"ECHO_NEVER_READY": "1"})
    executor.start(streaming_initial(executor, spec), executor.full(spec))
    sent = await executor.finish()
    failure = only_failure(sent).failure
    assert (failure.reason, failure.stage) == (FailureReason.STREAMING_NOT_READY, Stage.STREAMING_START)
    assert "within 1s" in failure.message
    assert not any(isinstance(message, StreamingReady) for message in sent)


async def test_a_streaming_job_that_exits_before_health_says_so(tmp_path: Path) -> None:
    executor = Executor(tmp_path)
    spec = streaming_spec(command=[PY, "-c", "raise SystemExit(5)"])
    executor.start(streaming_initial(executor, spec), executor.full(spec))
    failure = only_failure(await executor.finish()).failure
    assert failure.reason == FailureReason.STREAMING_NOT_READY
    assert "exited with code 5" in failure.message
