"""A job as the client sees it, kept current by the pushed events (no polling)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protocol.messages import JobStatusUpdate
from protocol.status import JobStatus

if TYPE_CHECKING:
    from facilitator_sdk.async_client import AsyncClient
    from facilitator_sdk.client import Client

__all__ = ["AsyncJob", "Job", "JobResult"]


class JobResult:
    """What a completed job produced."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.exit_code: int = data.get("exit_code", 0)
        self.stdout: str = data.get("stdout", "")
        self.stderr: str = data.get("stderr", "")
        self.stdout_truncated: bool = data.get("stdout_truncated", False)
        self.stderr_truncated: bool = data.get("stderr_truncated", False)
        self.duration_s: float = data.get("duration_s", 0.0)
        self.outputs: list[dict[str, Any]] = data.get("outputs", [])
        self.artifacts: dict[str, str] = data.get("artifacts", {})

    def __repr__(self) -> str:
        return f"<JobResult exit_code={self.exit_code} stdout={len(self.stdout)}B>"


def is_final(update: JobStatusUpdate) -> bool:
    return update.status.is_terminal and not update.detail.get("retrying")


class Job:
    """A job, bound to the :class:`~facilitator_sdk.Client` that made or fetched it."""

    def __init__(self, client: Client | AsyncClient, data: dict[str, Any]) -> None:
        self._client = client
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

    @property
    def done(self) -> bool:
        return JobStatus(self.status).is_terminal

    @property
    def result(self) -> JobResult | None:
        return JobResult(self._result) if self._result is not None else None

    def apply(self, update: JobStatusUpdate) -> bool:
        """Fold one pushed event in; ``False`` for a duplicate."""
        key = (update.attempt, update.status.value)
        if key in self._seen:
            return False
        self._seen.add(key)
        self.history.append(update.model_dump(mode="json"))
        if update.detail.get("retrying"):
            self.attempt = update.attempt + 1
            return True
        if not self.done:
            self.status = update.status.value
            self.attempt = update.attempt
            self.miner = update.miner or self.miner
            if update.result is not None:
                self._result = update.result.model_dump(mode="json")
            if update.failure is not None:
                self.failure = update.failure.model_dump(mode="json")
        return True

    def wait(self, timeout: float | None = None, on_status: Any = None) -> Job:
        """Block until the job ends; ``on_status(update)`` is called for every new status."""
        return self._client.wait(self, timeout=timeout, on_status=on_status)  # type: ignore[return-value]

    def cancel(self) -> Job:
        return self._client.cancel_job(self.job_id)  # type: ignore[return-value]


class AsyncJob(Job):
    async def wait(self, timeout: float | None = None, on_status: Any = None) -> AsyncJob:  # type: ignore[override]
        return await self._client.wait(self, timeout=timeout, on_status=on_status)  # type: ignore[misc]

    async def cancel(self) -> AsyncJob:  # type: ignore[override]
        return await self._client.cancel_job(self.job_id)  # type: ignore[misc]
