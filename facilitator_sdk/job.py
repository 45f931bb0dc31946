"""A job as the client sees it, kept current by the pushed events (no polling)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facilitator_sdk.errors import GridError, JobError
from protocol.keys import Keypair
from protocol.messages import JobStatusUpdate, StreamingEndpoint
from protocol.status import JobState, JobStatus, fold

if TYPE_CHECKING:
    from facilitator_sdk.async_client import AsyncClient
    from facilitator_sdk.client import Client
    from facilitator_sdk.streaming import AsyncStreamClient, StreamClient, StreamTarget

__all__ = ["AsyncJob", "AsyncJobResult", "Job", "JobResult"]


class JobResult:
    """What a completed job produced.

    ``stdout`` / ``stderr`` hold the first part of each stream; the whole streams and the
    object outputs are files in the grid's store: ``result.download("stdout", "logs/")``.
    ``outputs`` and ``logs`` list them as ``{path, sha256, size, kind, ref}``.
    """

    def __init__(self, data: dict[str, Any], job: Job | None = None) -> None:
        self.data = data
        self.job = job
        self.exit_code: int = data.get("exit_code", 0)
        self.stdout: str = data.get("stdout", "")
        self.stderr: str = data.get("stderr", "")
        self.stdout_truncated: bool = data.get("stdout_truncated", False)
        self.stderr_truncated: bool = data.get("stderr_truncated", False)
        self.duration_s: float = data.get("duration_s", 0.0)
        self.outputs: list[dict[str, Any]] = data.get("outputs", [])
        self.logs: list[dict[str, Any]] = data.get("logs", [])
        self.artifacts: dict[str, str] = data.get("artifacts", {})

    def __repr__(self) -> str:
        return f"<JobResult exit_code={self.exit_code} stdout={len(self.stdout)}B>"

    def _client(self) -> Client | AsyncClient:
        if self.job is None:
            raise GridError("this result is not bound to a job: get it from client.get_job() or job.result")
        return self.job._client

    def download(self, path: str, dest: str | os.PathLike[str]) -> Path:
        """Save ``stdout``, ``stderr`` or the object output ``path`` to ``dest`` (a file or a
        directory), checked against this result's sha256 and size; see :meth:`Client.download`."""
        return self._client().download(self.job.job_id, path, dest)  # type: ignore[union-attr, return-value]


class AsyncJobResult(JobResult):
    async def download(self, path: str, dest: str | os.PathLike[str]) -> Path:  # type: ignore[override]
        return await self._client().download(self.job.job_id, path, dest)  # type: ignore[union-attr, misc]


class Job:
    """A job, bound to the :class:`~facilitator_sdk.Client` that made or fetched it."""

    _result_class = JobResult

    def __init__(
        self, client: Client | AsyncClient, data: dict[str, Any], *, streaming_key: Keypair | None = None
    ) -> None:
        self._client = client
        self._data = data
        self.streaming_key = streaming_key
        self.job_id: str = data["job_id"]
        self.status: str = data["status"]
        self.attempt: int = data.get("attempt", 1)
        self.miner: str | None = data.get("miner")
        self.spec: dict[str, Any] = data.get("spec", {})
        self.failure: dict[str, Any] | None = data.get("failure")
        self._result: dict[str, Any] | None = data.get("result")
        self.history: list[dict[str, Any]] = list(data.get("history", []))
        self._seen = {(event["attempt"], event["status"]) for event in self.history}

    def __repr__(self) -> str:
        return f"<Job {self.job_id} [{self.status}]>"

    def to_dict(self) -> dict[str, Any]:
        """The job as the facilitator described it, brought up to date by the events seen since (JSON-ready)."""
        return {
            **self._data,
            "status": self.status,
            "attempt": self.attempt,
            "miner": self.miner,
            "failure": self.failure,
            "result": self._result,
            "history": self.history,
        }

    @property
    def done(self) -> bool:
        return JobStatus(self.status).is_terminal

    @property
    def result(self) -> JobResult | None:
        return self._result_class(self._result, self) if self._result is not None else None

    def apply(self, update: JobStatusUpdate) -> bool:
        """Fold one pushed event in; ``False`` for a duplicate.

        Every new event joins ``history``; the job's status moves as
        :func:`protocol.status.fold` says (the facilitator's rule too), so a late or replayed
        event of an earlier attempt never moves it back.
        """
        key = (update.attempt, update.status.value)
        if key in self._seen:
            return False
        self._seen.add(key)
        self.history.append(update.model_dump(mode="json"))
        before = JobState(status=JobStatus(self.status), attempt=self.attempt, miner=self.miner)
        after = fold(before, update)
        if after != before:
            self.status, self.attempt, self.miner = after.status.value, after.attempt, after.miner
            if after.result is not None:
                self._result = after.result.model_dump(mode="json")
            if after.failure is not None:
                self.failure = after.failure.model_dump(mode="json")
        return True

    def wait(self, timeout: float | None = None, on_status: Any = None) -> Job:
        """Block until the job ends; ``on_status(update)`` is called for every new status."""
        return self._client.wait(self, timeout=timeout, on_status=on_status)  # type: ignore[return-value]

    def cancel(self) -> Job:
        return self._client.cancel_job(self.job_id)  # type: ignore[return-value]

    # -- streaming jobs ------------------------------------------------------------------------

    @property
    def streaming(self) -> StreamingEndpoint | None:
        """Where this streaming job answers, once it is ``streaming_ready`` in its current attempt."""
        for event in reversed(self.history):
            current = event.get("status") == JobStatus.STREAMING_READY and event.get("attempt") == self.attempt
            if current and event.get("streaming"):
                return StreamingEndpoint.model_validate(event["streaming"])
        return None

    def _streaming_target(self) -> StreamTarget:
        endpoint = self.streaming
        if endpoint is None:
            if self.done:
                raise JobError(self)
            raise GridError(f"job {self.job_id} is not streaming_ready yet: call wait_for_streaming() first")
        if self.streaming_key is None:
            raise GridError(
                "this Job has no streaming key: only the Job returned by create_job() holds it "
                "(or set job.streaming_key to the key whose public half is in the spec)"
            )
        from facilitator_sdk.streaming import StreamTarget

        return StreamTarget.from_endpoint(self.job_id, endpoint, miner_hotkey=self.miner)

    def wait_for_streaming(self, timeout: float | None = None) -> StreamingEndpoint:
        """Block until the job serves (``streaming_ready``); raise :class:`JobError` if it ended first."""
        self._client.wait(self, timeout=timeout, until=lambda job: job.streaming is not None)  # type: ignore[arg-type]
        if self.streaming is None:
            raise JobError(self)
        return self.streaming  # type: ignore[return-value]

    def stream_client(self, **options: Any) -> StreamClient:
        """An httpx-style client for the job itself: signs every request, pins the job's certificate,
        verifies every reply (see :mod:`facilitator_sdk.streaming`)."""
        from facilitator_sdk.streaming import StreamClient

        return StreamClient(self._streaming_target(), self.streaming_key, **options)  # type: ignore[arg-type]

    def terminate(self) -> None:
        """Ask the job's gateway to end the job now (a signed request); it then completes as usual."""
        with self.stream_client() as client:
            client.terminate()

    def download(self, path: str, dest: str | os.PathLike[str]) -> Path:
        """Save ``stdout``, ``stderr`` or an object output to ``dest``; see :meth:`Client.download`.

        Unlike ``job.result.download``, this also reaches the logs a failed job kept.
        """
        return self._client.download(self.job_id, path, dest)  # type: ignore[return-value]


class AsyncJob(Job):
    _result_class = AsyncJobResult

    async def wait(self, timeout: float | None = None, on_status: Any = None) -> AsyncJob:  # type: ignore[override]
        return await self._client.wait(self, timeout=timeout, on_status=on_status)  # type: ignore[misc]

    async def cancel(self) -> AsyncJob:  # type: ignore[override]
        return await self._client.cancel_job(self.job_id)  # type: ignore[misc]

    async def download(self, path: str, dest: str | os.PathLike[str]) -> Path:  # type: ignore[override]
        return await self._client.download(self.job_id, path, dest)  # type: ignore[misc]

    async def wait_for_streaming(self, timeout: float | None = None) -> StreamingEndpoint:  # type: ignore[override]
        await self._client.wait(self, timeout=timeout, until=lambda job: job.streaming is not None)  # type: ignore[misc]
        if self.streaming is None:
            raise JobError(self)
        return self.streaming

    def stream_client(self, **options: Any) -> AsyncStreamClient:  # type: ignore[override]
        from facilitator_sdk.streaming import AsyncStreamClient

        return AsyncStreamClient(self._streaming_target(), self.streaming_key, **options)  # type: ignore[arg-type]

    async def terminate(self) -> None:  # type: ignore[override]
        async with self.stream_client() as client:
            await client.terminate()
