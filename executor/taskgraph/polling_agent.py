"""The polling agent: a session's worker started once, then task after task through its ``Process``.

The worker is the client's program written with ``armonik.worker``. It runs in the executor's
runtime like a job (its limits, its directories, its output captured) with ArmoniK's compute-plane
environment: ``ComputePlane__WorkerChannel__Address`` (where it serves ``Worker``) and
``ComputePlane__AgentChannel__Address`` (where the executor serves ``Agent``), both unix sockets
in a private directory of the executor's. For each task the agent

1. fetches the payload and the data dependencies into the data folder, as files named by result id;
2. calls ``Process`` with a fresh communication token, under the task's ``max_duration``;
3. judges the outcome: success needs every expected output written or delegated to a child; a
   worker's error output is the task's error (no retry); a worker that died, hung past the limit or
   stopped answering is a grid fault (``infra``: the engine may retry the task elsewhere), and the
   worker is started afresh for the next task.

Between tasks the data folder is emptied. :meth:`PollingAgent.stop` (the batch is done, the worker
idle too long) ends the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from executor.runtimes.base import JobDirs, RunOutcome, Runtime
from executor.taskgraph.agent import AgentService, Attempt, HeldTask, StoredData, TaskRun, Upstream, UpstreamRefused
from protocol.armonik_api.protos import agent_pb2_grpc, objects_pb2, worker_pb2, worker_pb2_grpc
from protocol.spec import JobSpec

__all__ = ["KeptWorker", "PollingAgent", "TaskOutcome", "WorkerDied"]

WORKER_START_S = 30.0
DEFAULT_TASK_S = 3600.0  # a task whose options give no max_duration
CHUNK_BYTES = 256 * 1024


class WorkerDied(Exception):
    """The worker could not be started, or stopped answering: a grid fault, not the task's."""


@dataclass
class TaskOutcome:
    """How one task attempt ended."""

    run: TaskRun
    status: str  # "completed", "error" (the worker's), "timeout", "infra" (a grid fault)
    message: str = ""
    stored: dict[str, StoredData] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    children: list[HeldTask] = field(default_factory=list)  # only when completed
    times: dict[str, float] = field(default_factory=dict)  # received_at, fetched_at … (epoch seconds)

    @property
    def completed(self) -> bool:
        return self.status == "completed"


class PollingAgent:
    """One worker program and the Agent it calls, for tasks of one session run one at a time."""

    def __init__(
        self,
        runtime: Runtime,
        dirs: JobDirs,
        worker: JobSpec,
        upstream: Upstream,
        *,
        env: dict[str, str] | None = None,
        max_output: int = 64 * 1024,
    ) -> None:
        self.runtime, self.dirs, self.worker, self.upstream = runtime, dirs, worker, upstream
        self.env, self.max_output = dict(env or {}), max_output
        self.service = AgentService(upstream)
        self._sockets = Path(tempfile.mkdtemp(prefix="grid-agent-"))  # short: a socket path has 108 bytes
        self._server: grpc.aio.Server | None = None
        self._stop = asyncio.Event()
        self._life: asyncio.Task[RunOutcome] | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: worker_pb2_grpc.WorkerStub | None = None

    @property
    def data_folder(self) -> Path:
        return self.dirs.volume

    def rebind(self, dirs: JobDirs, upstream: Upstream) -> None:
        """Serve the next batch job with this worker: its directories and its upstream."""
        self.dirs, self.upstream = dirs, upstream
        self.service.upstream = upstream

    @property
    def worker_socket(self) -> Path:
        return self._sockets / "worker.sock"

    @property
    def agent_socket(self) -> Path:
        return self._sockets / "agent.sock"

    def compute_plane_env(self) -> dict[str, str]:
        return {
            "ComputePlane__WorkerChannel__Address": str(self.worker_socket),
            "ComputePlane__WorkerChannel__SocketType": "unixdomainsocket",
            "ComputePlane__AgentChannel__Address": str(self.agent_socket),
            "ComputePlane__AgentChannel__SocketType": "unixdomainsocket",
        }

    @property
    def running(self) -> bool:
        return self._life is not None and not self._life.done()

    async def start(self, timeout: float = WORKER_START_S) -> None:
        """Serve the Agent, start the worker and wait until it answers its health check."""
        if self._server is None:
            self._server = grpc.aio.server()
            agent_pb2_grpc.add_AgentServicer_to_server(self.service, self._server)
            self._server.add_insecure_port(f"unix:{self.agent_socket}")
            await self._server.start()
        with contextlib.suppress(FileNotFoundError):
            self.worker_socket.unlink()
        self._stop = asyncio.Event()
        env = {**self.env, **self.compute_plane_env()}
        self._life = asyncio.create_task(
            self.runtime.run(self.worker, self.dirs, env, max_output=self.max_output, stop=self._stop)
        )
        self._channel = grpc.aio.insecure_channel(f"unix:{self.worker_socket}")
        self._stub = worker_pb2_grpc.WorkerStub(self._channel)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._life.done():
                        raise WorkerDied(f"the worker exited at its start: {self._exit(self._life)}")
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        reply = await self._stub.HealthCheck(objects_pb2.Empty(), timeout=1.0)
                        if reply.status == worker_pb2.HealthCheckReply.SERVING:
                            return
                    await asyncio.sleep(0.05)
        except TimeoutError:
            await self._end_worker()
            raise WorkerDied(f"the worker did not serve its health check within {timeout:g} s") from None

    async def run(self, run: TaskRun) -> TaskOutcome:
        """Run one task attempt through the worker (started, or started again, as needed)."""
        times = {"received_at": time.time()}
        outcome = await self._run(run, times)
        outcome.times = {**times, "processed_at": time.time()}
        return outcome

    async def _run(self, run: TaskRun, times: dict[str, float]) -> TaskOutcome:
        if not self.running:
            try:
                await self.start()
            except WorkerDied as exc:
                return TaskOutcome(run, "infra", str(exc))
        attempt = Attempt(run, self.data_folder)
        try:
            await self._inputs(run)
        except UpstreamRefused as exc:
            return TaskOutcome(run, "infra", f"inputs could not be fetched: {exc.message}")
        times["acquired_at"] = times["fetched_at"] = time.time()
        options = run.task_options()
        limit = options.max_duration.ToTimedelta().total_seconds() or DEFAULT_TASK_S
        request = worker_pb2.ProcessRequest(
            communication_token=attempt.token,
            session_id=run.session_id,
            task_id=run.task_id,
            task_options=options,
            expected_output_keys=run.expected_output_ids,
            payload_id=run.payload_id,
            data_dependencies=run.data_dependencies,
            data_folder=str(self.data_folder),
            configuration=objects_pb2.Configuration(data_chunk_max_size=CHUNK_BYTES),
        )
        self.service.current = attempt
        times["started_at"] = time.time()
        try:
            assert self._stub is not None
            reply = await self._stub.Process(request, timeout=limit)
        except grpc.aio.AioRpcError as exc:
            return await self._lost(attempt, exc, limit)
        finally:
            self.service.current = None
            _empty(self.data_folder)
        return self._judged(attempt, reply)

    async def _inputs(self, run: TaskRun) -> None:
        for result_id in dict.fromkeys([run.payload_id, *run.data_dependencies]):
            await self.upstream.fetch(run, result_id, self.data_folder / result_id)

    async def _lost(self, attempt: Attempt, exc: grpc.aio.AioRpcError, limit: float) -> TaskOutcome:
        """A ``Process`` call that ended in a status: the task's error if the worker said so, else a fault."""
        await asyncio.sleep(0)  # a worker that died has its run end now
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            await self._end_worker()  # it may still be busy with the task: the next one gets a fresh worker
            return TaskOutcome(attempt.run, "timeout", f"the task ran past its max_duration of {limit:g} s")
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED) or not self.running:
            await self._end_worker()
            return TaskOutcome(attempt.run, "infra", f"the worker stopped answering: {exc.code().name} {exc.details()}")
        # it answered: the processing function raised (the stock worker logs it and answers no reply)
        message = f"the worker failed the task: {exc.code().name} {exc.details()}" + _refusals(attempt)
        return TaskOutcome(attempt.run, "error", message, attempt.stored, attempt.created)

    def _judged(self, attempt: Attempt, reply: worker_pb2.ProcessReply) -> TaskOutcome:
        run = attempt.run
        kind = reply.output.WhichOneof("type")
        if kind == "error":
            message = reply.output.error.details + _refusals(attempt)
            return TaskOutcome(run, "error", message, attempt.stored, attempt.created)
        if kind != "ok":
            return TaskOutcome(run, "error", "the worker's Process answered no output", attempt.stored, attempt.created)
        missing = [r for r in run.expected_output_ids if r not in attempt.stored and r not in attempt.delegated]
        if missing:
            message = f"the task ended without writing its expected output {missing[0]} (nor delegating it)"
            return TaskOutcome(run, "error", message, attempt.stored, attempt.created)
        return TaskOutcome(run, "completed", "", attempt.stored, attempt.created, attempt.children)

    async def _end_worker(self) -> RunOutcome | None:
        self._stop.set()
        outcome = None
        if self._life is not None:
            with contextlib.suppress(Exception):
                outcome = await self._life
        if self._channel is not None:
            await self._channel.close()
        self._life = self._channel = self._stub = None
        return outcome

    @staticmethod
    def _exit(life: asyncio.Task[RunOutcome]) -> str:
        if life.exception() is not None:
            return str(life.exception())
        outcome = life.result()
        return f"exit code {outcome.exit_code}; stderr: {outcome.stderr.text()[-2000:]}"

    async def stop(self) -> RunOutcome | None:
        """End the worker and the Agent; what the worker's run came to (its output), if it ran."""
        outcome = await self._end_worker()
        if self._server is not None:
            await self._server.stop(0.5)
            self._server = None
        shutil.rmtree(self._sockets, ignore_errors=True)
        return outcome


def _refusals(attempt: Attempt) -> str:
    """What the agent refused the task, which is often why it failed."""
    return f" (the agent refused it: {'; '.join(attempt.refused[-3:])})" if attempt.refused else ""


def _empty(folder: Path) -> None:
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


class KeptWorker:
    """The executor's worker kept between batch jobs of one session and worker program.

    :meth:`take` hands the kept agent to the next batch job that matches its key (session,
    command, image), else ends it; :meth:`keep` holds it after a job, and ends it once idle for
    ``idle_s`` seconds.
    """

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.key: tuple | None = None
        self.agent: PollingAgent | None = None
        self._idle: asyncio.Task[None] | None = None

    async def take(self, key: tuple) -> PollingAgent | None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        agent, self.agent = self.agent, None
        if agent is not None and key == self.key and agent.running:
            return agent
        if agent is not None:
            await agent.stop()
        return None

    def keep(self, key: tuple, agent: PollingAgent) -> None:
        self.key, self.agent = key, agent
        self._idle = asyncio.create_task(self._end_when_idle(agent))

    async def _end_when_idle(self, agent: PollingAgent) -> None:
        await asyncio.sleep(self.idle_s)
        if self.agent is agent:
            self.agent = None
            await agent.stop()

    async def close(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self.agent is not None:
            agent, self.agent = self.agent, None
            await agent.stop()
