"""The asyncio client. One event stream per client serves every ``wait`` at once."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from facilitator_sdk._base import DEFAULT_RATE_LIMIT_RETRIES, DEFAULT_TIMEOUT, BaseClient, Progress, Since
from facilitator_sdk._transfer import CHUNK_SIZE, FileData, UploadSource
from facilitator_sdk.auth import GridAuth
from facilitator_sdk.errors import ConnectionError, GridError, JobError, JobTimeoutError, api_error
from facilitator_sdk.job import AsyncJob
from facilitator_sdk.report import AsyncReport, EvidenceLike, build_report
from facilitator_sdk.spec import ObjectRef
from protocol.errors import HandshakeError
from protocol.keys import Keypair
from protocol.messages import (
    FACILITATOR_TO_CLIENT,
    Error,
    JobCreate,
    JobStatusUpdate,
    JobUnwatch,
    JobWatch,
    Message,
)
from protocol.spec import JobSpec
from protocol.status import is_final
from protocol.streaming import Evidence
from protocol.transport import Connection, ReconnectingClient

__all__ = ["AsyncClient"]

# The facilitator drops frames over a connection's rate and warns at most once a second
# (protocol/ratelimit.py FrameGate): this long after a warning, every frame it may have dropped
# is sent again.
RATE_LIMIT_RECOVERY_S = 1.5


class AsyncClient(BaseClient):
    """``async with AsyncClient("http://127.0.0.1:8000", "client.key") as client: ...``"""

    def __init__(
        self,
        facilitator_url: str,
        keypair: Keypair | str | os.PathLike[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        rate_limit_retries: int = DEFAULT_RATE_LIMIT_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(facilitator_url, keypair, rate_limit_retries=rate_limit_retries)
        self._http = httpx.AsyncClient(
            base_url=self.api_url, auth=GridAuth(self.keypair), timeout=timeout, transport=transport
        )
        self._stream: ReconnectingClient | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._watchers: dict[str, list[asyncio.Queue[JobStatusUpdate | GridError]]] = {}
        # Creates sent on the stream that no event has answered yet: the stream sends them again
        # after a reconnect or a dropped frame (a repeat of a signed job is a safe retry).
        self._unconfirmed: set[str] = set()
        self._recovery: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
        if self._stream_task is not None:
            self._stream_task.cancel()
        if self._recovery is not None:
            self._recovery.cancel()
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise self._connection_error(exc) from exc
            wait = self._retry_wait(response, attempt)
            if wait is None:
                return self._parse(response)
            await asyncio.sleep(wait)  # a 429: the request was not handled; it is signed afresh
            attempt += 1

    async def create_job(self, spec: JobSpec | dict[str, Any], job_id: str | None = None) -> AsyncJob:
        body, streaming_key = self._create_body(spec, job_id)
        return AsyncJob(self, await self._request("POST", "/jobs", json=body), streaming_key=streaming_key)

    async def get_job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, await self._request("GET", f"/jobs/{job_id}"))

    async def list_jobs(
        self, status: str | None = None, limit: int = 50, offset: int = 0, since: Since | None = None
    ) -> list[AsyncJob]:
        """:meth:`Client.list_jobs <facilitator_sdk.Client.list_jobs>`."""
        body = await self._request("GET", "/jobs", params=self._list_params(status, limit, offset, since))
        return [AsyncJob(self, item) for item in body["jobs"]]

    async def cancel_job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, await self._request("POST", f"/jobs/{job_id}/cancel"))

    async def report_malicious(
        self,
        job: AsyncJob | str,
        evidence: EvidenceLike,
        details: str = "",
        trusted_evidence: Evidence | None = None,
    ) -> AsyncReport:
        """:meth:`Client.report_malicious <facilitator_sdk.Client.report_malicious>`."""
        report = build_report(self.keypair, job, evidence, details, trusted_evidence)
        body = report.model_dump(mode="json")
        return AsyncReport(self, await self._request("POST", self._reports_route(report.job_id), json=body))

    async def get_report(self, report_id: str) -> AsyncReport:
        return AsyncReport(self, await self._request("GET", f"/reports/{report_id}"))

    async def list_reports(self, job_id: str) -> list[AsyncReport]:
        """Your reports about job ``job_id``, oldest first."""
        answer = await self._request("GET", f"/jobs/{job_id}/reports")
        return [AsyncReport(self, report) for report in answer["reports"]]

    async def upload(
        self, file: FileData, filename: str | None = None, *, on_progress: Progress | None = None
    ) -> ObjectRef:
        """:meth:`Client.upload <facilitator_sdk.Client.upload>`; the file is read in a thread, chunk by chunk."""
        source = await asyncio.to_thread(UploadSource, file, filename, on_progress)
        try:
            grant = await self._request("POST", "/uploads", json={"filename": source.filename})
            try:
                response = await self._http.put(
                    self._store_url(grant["url"]),
                    content=_achunks(source),
                    headers={**source.headers, **grant.get("headers", {})},
                    auth=None,
                )
            except httpx.TransportError as exc:
                raise self._connection_error(exc) from exc
            return source.finish(grant["key"], self._store_answer(response, "upload"))
        finally:
            source.close()

    async def download(
        self, job_id: str, path: str, dest: str | os.PathLike[str], *, on_progress: Progress | None = None
    ) -> Path:
        """:meth:`Client.download <facilitator_sdk.Client.download>`; the file is written in a thread."""
        info = await self._request("GET", self._files_route(job_id, path))
        with await asyncio.to_thread(self._sink, info, dest, on_progress) as sink:
            if info["url"] is not None:
                try:
                    async with self._http.stream("GET", self._store_url(info["url"]), auth=None) as response:
                        if response.status_code >= 400:
                            await response.aread()
                            self._store_answer(response, "download")
                        async for chunk in response.aiter_bytes(CHUNK_SIZE):
                            await asyncio.to_thread(sink.write, chunk)
                except httpx.TransportError as exc:
                    raise self._connection_error(exc) from exc
            return await asyncio.to_thread(sink.commit)

    async def run(
        self,
        spec: JobSpec | dict[str, Any],
        timeout: float | None = None,
        on_status: Callable[[JobStatusUpdate], None] | None = None,
    ) -> AsyncJob:
        """Create the job and wait for it; raise :class:`JobError` unless it completed.

        The job is created on the event stream (``job.create``) rather than by a request of its
        own: the same checks and errors as :meth:`create_job`, one message instead of two.
        """
        body, streaming_key = self._create_body(spec, None)
        create = JobCreate(job_id=body["job_id"], spec=body["spec"], signature=body["signature"])
        data = {"job_id": create.job_id, "status": "sent", "spec": create.spec, "client_hotkey": self.keypair.hotkey}
        job = AsyncJob(self, data, streaming_key=streaming_key)
        job = await self._follow(job, timeout, on_status, None, create)
        if job.status != "completed":
            raise JobError(job)
        return job

    async def wait(
        self,
        job: AsyncJob,
        timeout: float | None = None,
        on_status: Callable[[JobStatusUpdate], None] | None = None,
        until: Callable[[AsyncJob], bool] | None = None,
    ) -> AsyncJob:
        """Follow the job's pushed events until it ends (or ``until(job)`` holds)."""
        return await self._follow(job, timeout, on_status, until, None)

    async def _follow(
        self,
        job: AsyncJob,
        timeout: float | None,
        on_status: Callable[[JobStatusUpdate], None] | None,
        until: Callable[[AsyncJob], bool] | None,
        create: JobCreate | None,
    ) -> AsyncJob:
        """:meth:`wait`, the job first created on the stream if ``create`` is given."""
        stream = await self._ensure_stream()
        queue: asyncio.Queue[JobStatusUpdate | GridError] = asyncio.Queue()
        self._watchers.setdefault(job.job_id, []).append(queue)
        if create is not None:
            self._unconfirmed.add(job.job_id)
            stream.send(create, ack_key=_create_key(job.job_id))
        else:
            stream.send(JobWatch(job_ids=[job.job_id]))
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not job.done and not (until is not None and until(job)):
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    update = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    raise JobTimeoutError(job, float(timeout or 0)) from None
                if isinstance(update, GridError):
                    raise update
                if job.apply(update):
                    if on_status is not None:
                        on_status(update)
                    if is_final(update):
                        break
        finally:
            self._confirmed(job.job_id)
            watchers = self._watchers.get(job.job_id, [])
            if queue in watchers:
                watchers.remove(queue)
            if not watchers:
                self._watchers.pop(job.job_id, None)
                if not job.done:
                    # The server drops a watch by itself only after the job's final event.
                    stream.send(JobUnwatch(job_ids=[job.job_id]))
        return job

    async def _ensure_stream(self) -> ReconnectingClient:
        if self._stream is None:
            self._stream = ReconnectingClient(
                self.events_url,
                self.keypair,
                "client",
                FACILITATOR_TO_CLIENT,
                self._on_event,
                on_connect=self._rewatch,
                name="facilitator events",
            )
            self._stream_task = asyncio.create_task(self._stream.run_forever())
        try:
            await asyncio.wait_for(self._stream.connected.wait(), 10)
        except TimeoutError:
            raise ConnectionError(f"cannot open the event stream at {self.events_url}") from None
        except HandshakeError as exc:
            raise ConnectionError(f"event stream refused: {exc}") from exc
        return self._stream

    async def _rewatch(self, connection: Connection) -> None:
        # After a reconnect the server forgot our watches; it replays history, duplicates are dropped.
        # Unconfirmed creates are not watched: the stream sends them again (and they watch).
        watched = [job_id for job_id in self._watchers if job_id not in self._unconfirmed]
        for start in range(0, len(watched), 1000):  # what one job.watch may name
            await connection.send(JobWatch(job_ids=watched[start : start + 1000]))

    async def _resend_after_drop(self, connection: Connection) -> None:
        await asyncio.sleep(RATE_LIMIT_RECOVERY_S)
        if self._stream is None or self._stream.connection is not connection:
            return  # reconnected meanwhile: that sent everything again
        self._stream.resend_unacknowledged()
        await self._rewatch(connection)

    def _confirmed(self, job_id: str) -> None:
        """An event or a refusal answered ``job_id``'s create: it is not sent again."""
        if job_id in self._unconfirmed:
            self._unconfirmed.discard(job_id)
            if self._stream is not None:
                self._stream.acknowledge([_create_key(job_id)])

    async def _on_event(self, connection: Connection, message: Message) -> None:
        if isinstance(message, JobStatusUpdate):
            self._confirmed(message.job_id)
            for queue in self._watchers.get(message.job_id, []):
                queue.put_nowait(message)
        elif isinstance(message, Error) and message.code == "rate_limited" and not message.ref:
            # Some frame of ours was dropped, not refused: send again what it may have been.
            if self._recovery is None or self._recovery.done():
                self._recovery = asyncio.create_task(self._resend_after_drop(connection))
        elif isinstance(message, Error):
            if message.ref:
                self._confirmed(message.ref)
            error = _stream_error(message)
            # An error naming a job goes to its waiters; one naming none concerns them all.
            targets = [message.ref] if message.ref else list(self._watchers)
            for job_id in targets:
                for queue in self._watchers.get(job_id, []):
                    queue.put_nowait(error)


async def _achunks(source: UploadSource) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(source.read_chunk):
        yield chunk


# The REST status of each refusal a job.create or job.watch can meet, so that the stream raises
# the very exceptions a request would (facilitator_sdk.errors.api_error).
_STREAM_ERROR_STATUS = {
    "not_found": 404,
    "conflict": 409,
    "request_too_large": 413,
    "invalid_request": 400,
    "invalid_spec": 400,
    "invalid_input": 400,
    "bad_job_signature": 400,
}


def _create_key(job_id: str) -> tuple[str, str]:
    return ("job.create", job_id)


def _stream_error(error: Error) -> GridError:
    status = _STREAM_ERROR_STATUS.get(error.code)
    if status is not None:
        return api_error(status, {"code": error.code, "message": error.message, "errors": error.errors})
    return GridError(f"event stream error: {error.code}: {error.message}")
