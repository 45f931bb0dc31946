"""ArmoniK's Agent service, as the executor serves it to the worker of the task running now.

The worker calls it over a unix socket in the executor's job directory, naming its task attempt by
the ``communication_token`` the executor gave it in ``Process``. A call whose token is not the
running attempt's is refused (``PERMISSION_DENIED``): a worker can only act for the task it runs,
and only while it runs it.

- ``CreateResultsMetaData`` / ``CreateResults``: new results of the session, owned by the task,
  created upstream at once (their ids are needed by the rest of the task).
- ``NotifyResultData``: the file named by the result id in the data folder is handed to the
  upstream, its sha256 and size recorded, before the call returns. Only the task's expected
  outputs and the results it created may be written. As in ArmoniK, the results complete when the
  task does (and abort if it fails).
- ``SubmitTasks``: child tasks get their ids at once and are held: they are submitted only if the
  task succeeds (ArmoniK's rule). A child may take over one of the task's expected outputs
  (delegation): the task then need not write it.
- ``GetResourceData``: a result of the session fetched into the data folder.
- ``GetCommonData``, ``GetDirectData`` and the deprecated ``CreateTask`` are ArmoniK's unfinished
  parts (its own agent does not serve them): ``UNIMPLEMENTED``.

The service is protocol logic over an :class:`Upstream`; the executor's upstream is the chain.
"""

from __future__ import annotations

import abc
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from protocol.armonik_api.protos import agent_pb2, agent_pb2_grpc, objects_pb2, result_status_pb2

__all__ = ["AgentService", "Attempt", "HeldTask", "StoredData", "TaskRun", "Upstream", "UpstreamRefused"]

MAX_RESULTS_A_CALL = 10_000
MAX_TASKS_A_CALL = 10_000


@dataclass(frozen=True)
class TaskRun:
    """One attempt of one task, as the engine hands it to the executor."""

    session_id: str
    task_id: str
    payload_id: str
    data_dependencies: tuple[str, ...]
    expected_output_ids: tuple[str, ...]
    options: bytes = b""  # TaskOptions, serialized
    attempt: int = 1

    def task_options(self) -> objects_pb2.TaskOptions:
        return objects_pb2.TaskOptions.FromString(self.options)


@dataclass(frozen=True)
class StoredData:
    """A result's data, handed upstream: in the store under ``key``, or small and held as ``data``
    to travel with the task's end."""

    result_id: str
    sha256: str
    size: int
    key: str = ""
    data: bytes | None = None


@dataclass(frozen=True)
class HeldTask:
    """A child task submitted by the worker, waiting for its parent's success."""

    task_id: str
    payload_id: str
    data_dependencies: tuple[str, ...]
    expected_output_ids: tuple[str, ...]
    options: bytes  # the child's own TaskOptions, serialized ("": the request's, else the parent's)


class UpstreamRefused(Exception):
    """The upstream would not do what the worker asked: its gRPC status and why."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Upstream(abc.ABC):
    """Where a task attempt's data and new results live: the control plane, through the chain."""

    @abc.abstractmethod
    async def fetch(self, run: TaskRun, result_id: str, path: Path) -> None:
        """Write result ``result_id``'s data to ``path`` (raise :class:`UpstreamRefused` if it cannot be)."""

    @abc.abstractmethod
    async def store(self, run: TaskRun, result_id: str, path: Path) -> StoredData:
        """Take the file at ``path`` as result ``result_id``'s data, to complete with the task; what was taken."""

    @abc.abstractmethod
    async def create_results(self, run: TaskRun, names: list[str]) -> list[str]:
        """New results of the session, owned by the task, one per name; their ids in order."""


@dataclass
class Attempt:
    """What the agent knows of the task attempt running now, and what it did."""

    run: TaskRun
    data_folder: Path
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    created: list[str] = field(default_factory=list)  # results the task created
    stored: dict[str, StoredData] = field(default_factory=dict)
    children: list[HeldTask] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # what the agent refused it, to tell why a task failed

    @property
    def delegated(self) -> set[str]:
        """The task's expected outputs a child has taken over."""
        mine = set(self.run.expected_output_ids)
        return {r for child in self.children for r in child.expected_output_ids if r in mine}

    def writable(self) -> set[str]:
        return set(self.run.expected_output_ids) | set(self.created)


class AgentService(agent_pb2_grpc.AgentServicer):
    """``armonik.api.grpc.v1.agent.Agent`` for one executor: one task attempt at a time."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.current: Attempt | None = None

    async def _attempt(self, context: grpc.aio.ServicerContext, token: str, session_id: str | None) -> Attempt:
        attempt = self.current
        if attempt is None or not secrets.compare_digest(token, attempt.token):
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "this communication token is not the task running now"
            )
        assert attempt is not None
        if session_id is not None and session_id != attempt.run.session_id:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"the task running now is of session {attempt.run.session_id}"
            )
        return attempt

    async def _deny(self, context: grpc.aio.ServicerContext, attempt: Attempt, code: grpc.StatusCode, why: str) -> None:
        attempt.refused.append(f"{code.name}: {why}")
        await context.abort(code, why)

    async def _refused(self, context: grpc.aio.ServicerContext, attempt: Attempt, exc: UpstreamRefused) -> None:
        await self._deny(context, attempt, exc.code, exc.message)

    async def _create(self, context: Any, attempt: Attempt, names: list[str]) -> list[str]:
        if not names or len(names) > MAX_RESULTS_A_CALL:
            await self._deny(
                context, attempt, grpc.StatusCode.INVALID_ARGUMENT, f"1 to {MAX_RESULTS_A_CALL} results a call"
            )
        try:
            ids = await self.upstream.create_results(attempt.run, names)
        except UpstreamRefused as exc:
            await self._refused(context, attempt, exc)
        attempt.created += ids
        return ids

    async def CreateResultsMetaData(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        attempt = await self._attempt(context, request.communication_token, request.session_id)
        names = [r.name for r in request.results]
        ids = await self._create(context, attempt, names)
        return agent_pb2.CreateResultsMetaDataResponse(
            results=[
                _metadata(attempt, n, r, result_status_pb2.RESULT_STATUS_CREATED)
                for n, r in zip(names, ids, strict=True)
            ],
            communication_token=request.communication_token,
        )

    async def CreateResults(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        attempt = await self._attempt(context, request.communication_token, request.session_id)
        names = [r.name for r in request.results]
        ids = await self._create(context, attempt, names)
        for result_id, wanted in zip(ids, request.results, strict=True):
            path = attempt.data_folder / result_id
            path.write_bytes(wanted.data)
            await self._store(context, attempt, result_id)
        return agent_pb2.CreateResultsResponse(
            results=[
                _metadata(attempt, n, r, result_status_pb2.RESULT_STATUS_COMPLETED)
                for n, r in zip(names, ids, strict=True)
            ],
            communication_token=request.communication_token,
        )

    async def _store(self, context: Any, attempt: Attempt, result_id: str) -> None:
        try:
            attempt.stored[result_id] = await self.upstream.store(
                attempt.run, result_id, attempt.data_folder / result_id
            )
        except UpstreamRefused as exc:
            await self._refused(context, attempt, exc)

    async def NotifyResultData(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        attempt = await self._attempt(context, request.communication_token, None)
        writable = attempt.writable()
        ids = []
        for identifier in request.ids:
            if identifier.session_id != attempt.run.session_id or identifier.result_id not in writable:
                await self._deny(
                    context,
                    attempt,
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"result {identifier.result_id} is neither an expected output of task {attempt.run.task_id}"
                    " nor one it created",
                )
            if identifier.result_id in attempt.stored:
                await self._deny(
                    context,
                    attempt,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"result {identifier.result_id} was written already",
                )
            if not (attempt.data_folder / identifier.result_id).is_file():
                await self._deny(
                    context,
                    attempt,
                    grpc.StatusCode.NOT_FOUND,
                    f"no file {identifier.result_id} in the data folder: write the data there before notifying it",
                )
            ids.append(identifier.result_id)
        for result_id in ids:
            await self._store(context, attempt, result_id)
        return agent_pb2.NotifyResultDataResponse(result_ids=ids)

    async def SubmitTasks(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        attempt = await self._attempt(context, request.communication_token, request.session_id)
        if not request.task_creations or len(request.task_creations) > MAX_TASKS_A_CALL:
            await self._deny(
                context, attempt, grpc.StatusCode.INVALID_ARGUMENT, f"1 to {MAX_TASKS_A_CALL} tasks a call"
            )
        taken = {r for child in attempt.children for r in child.expected_output_ids}
        base = request.task_options.SerializeToString(deterministic=True) if request.HasField("task_options") else b""
        held = []
        for creation in request.task_creations:
            if not creation.payload_id:
                await self._deny(
                    context, attempt, grpc.StatusCode.INVALID_ARGUMENT, "a task needs a payload (payload_id)"
                )
            outputs = tuple(creation.expected_output_keys)
            twice = (set(outputs) & taken) or {r for r in outputs if outputs.count(r) > 1}
            if twice:
                await self._deny(
                    context,
                    attempt,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"result {sorted(twice)[0]} is the expected output of two tasks",
                )
            taken |= set(outputs)
            own = (
                creation.task_options.SerializeToString(deterministic=True)
                if creation.HasField("task_options")
                else b""
            )
            held.append(
                HeldTask(
                    task_id=str(uuid.uuid4()),
                    payload_id=creation.payload_id,
                    data_dependencies=tuple(creation.data_dependencies),
                    expected_output_ids=outputs,
                    options=own or base,
                )
            )
        attempt.children += held
        Info = agent_pb2.SubmitTasksResponse.TaskInfo
        return agent_pb2.SubmitTasksResponse(
            task_infos=[
                Info(
                    task_id=h.task_id,
                    expected_output_ids=h.expected_output_ids,
                    data_dependencies=h.data_dependencies,
                    payload_id=h.payload_id,
                )
                for h in held
            ],
            communication_token=request.communication_token,
        )

    async def GetResourceData(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        attempt = await self._attempt(context, request.communication_token, None)
        if not request.result_id or "/" in request.result_id or request.result_id in (".", ".."):
            await self._deny(context, attempt, grpc.StatusCode.INVALID_ARGUMENT, "a result id, not a path")
        if request.result_id in attempt.stored:  # the task's own data: in the data folder already
            return agent_pb2.DataResponse(result_id=request.result_id)
        try:
            await self.upstream.fetch(attempt.run, request.result_id, attempt.data_folder / request.result_id)
        except UpstreamRefused as exc:
            await self._refused(context, attempt, exc)
        return agent_pb2.DataResponse(result_id=request.result_id)

    async def GetCommonData(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "common data is not part of ArmoniK's agent either")

    async def GetDirectData(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "direct data is not part of ArmoniK's agent either")

    async def CreateTask(self, requests: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "CreateTask is deprecated: use SubmitTasks")


def _metadata(attempt: Attempt, name: str, result_id: str, status: int) -> agent_pb2.ResultMetaData:
    meta = agent_pb2.ResultMetaData(session_id=attempt.run.session_id, result_id=result_id, name=name, status=status)
    meta.created_at.GetCurrentTime()
    return meta
