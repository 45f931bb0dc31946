"""The synchronous client."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from facilitator_sdk._base import DEFAULT_RATE_LIMIT_RETRIES, DEFAULT_TIMEOUT, BaseClient, Progress, Since
from facilitator_sdk._transfer import CHUNK_SIZE, FileData, UploadSource
from facilitator_sdk.auth import GridAuth
from facilitator_sdk.errors import ConnectionError, GridError, JobError, JobTimeoutError, NotFoundError
from facilitator_sdk.job import Job
from facilitator_sdk.report import EvidenceLike, Report, build_report
from facilitator_sdk.spec import ObjectRef
from protocol.errors import FrameError, HandshakeError
from protocol.handshake import ClientHandshake
from protocol.keys import Keypair
from protocol.messages import AUTH_FROM_SERVER, FACILITATOR_TO_CLIENT, Error, JobStatusUpdate, JobWatch, parse_frame
from protocol.messages.base import MAX_FRAME_BYTES, parse_frames
from protocol.spec import JobSpec
from protocol.status import is_final
from protocol.streaming import Evidence

__all__ = ["Client"]


class Client(BaseClient):
    """Talks to a facilitator: ``Client("http://127.0.0.1:8000", "client.key")``."""

    def __init__(
        self,
        facilitator_url: str,
        keypair: Keypair | str | os.PathLike[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        rate_limit_retries: int = DEFAULT_RATE_LIMIT_RETRIES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(facilitator_url, keypair, rate_limit_retries=rate_limit_retries)
        self._http = httpx.Client(
            base_url=self.api_url, auth=GridAuth(self.keypair), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise self._connection_error(exc) from exc
            wait = self._retry_wait(response, attempt)
            if wait is None:
                return self._parse(response)
            time.sleep(wait)  # a 429: the request was not handled; it is signed afresh
            attempt += 1

    def create_job(self, spec: JobSpec | dict[str, Any], job_id: str | None = None) -> Job:
        body, streaming_key = self._create_body(spec, job_id)
        return Job(self, self._request("POST", "/jobs", json=body), streaming_key=streaming_key)

    def get_job(self, job_id: str) -> Job:
        return Job(self, self._request("GET", f"/jobs/{job_id}"))

    def list_jobs(
        self, status: str | None = None, limit: int = 50, offset: int = 0, since: Since | None = None
    ) -> list[Job]:
        """Your jobs, newest first: of one ``status``, created at or after ``since`` (a datetime, or Unix seconds)."""
        body = self._request("GET", "/jobs", params=self._list_params(status, limit, offset, since))
        return [Job(self, item) for item in body["jobs"]]

    def cancel_job(self, job_id: str) -> Job:
        return Job(self, self._request("POST", f"/jobs/{job_id}/cancel"))

    def report_malicious(
        self,
        job: Job | str,
        evidence: EvidenceLike,
        details: str = "",
        trusted_evidence: Evidence | None = None,
    ) -> Report:
        """Report the miner of one of your streaming jobs, with the replies it sealed as evidence.

        Args:
            job: the job (or its id) whose miner misbehaved.
            evidence: verified replies (``StreamClient.evidence``, a ``SealedResponse``, or one of them).
            details: what is wrong with them, for the humans who read the report.
            trusted_evidence: a trusted miner's differing reply to the same request, where you have one.

        Returns:
            The report, ``pending`` until the validator decides (:meth:`Report.wait`).

        Raises:
            ApiError: refused, with the reason in ``code`` (e.g. ``bad_evidence``, status 422).
        """
        report = build_report(self.keypair, job, evidence, details, trusted_evidence)
        body = report.model_dump(mode="json")
        return Report(self, self._request("POST", self._reports_route(report.job_id), json=body))

    def get_report(self, report_id: str) -> Report:
        return Report(self, self._request("GET", f"/reports/{report_id}"))

    def list_reports(self, job_id: str) -> list[Report]:
        """Your reports about job ``job_id``, oldest first."""
        return [Report(self, report) for report in self._request("GET", f"/jobs/{job_id}/reports")["reports"]]

    def upload(self, file: FileData, filename: str | None = None, *, on_progress: Progress | None = None) -> ObjectRef:
        """Put a file into the grid's store, for ``Input.object(path, ref)``.

        ``file`` is a path, bytes or a binary file (read from where it stands); it is streamed in
        chunks, never read whole. ``filename`` defaults to the file's own name.
        ``on_progress(sent, size)`` is called with 0 first, then after every chunk read for sending.

        Raises:
            ChecksumError: the store holds other bytes than were sent.
        """
        with UploadSource(file, filename, on_progress) as source:
            grant = self._request("POST", "/uploads", json={"filename": source.filename})
            try:
                response = self._http.put(
                    self._store_url(grant["url"]),
                    content=source.chunks(),
                    headers={**source.headers, **grant.get("headers", {})},
                    auth=None,
                )
            except httpx.TransportError as exc:
                raise self._connection_error(exc) from exc
            return source.finish(grant["key"], self._store_answer(response, "upload"))

    def download(
        self, job_id: str, path: str, dest: str | os.PathLike[str], *, on_progress: Progress | None = None
    ) -> Path:
        """Save a job's ``stdout``, ``stderr`` or object output ``path`` to ``dest``.

        Object outputs are a completed job's; the logs also a failed job's, when it kept them.
        ``dest`` is a file, or a directory (existing, or given with a trailing ``/``) in which
        the file keeps its relative path. The bytes go to a temporary file beside it, moved into
        place once their size and sha256 match the job's result: no half-written file, ever.
        ``on_progress(received, size)`` is called with 0 first, then after every chunk.

        Raises:
            NotFoundError: no such job of yours, or no such file in its record.
            ConflictError: the job has not completed (or, for the logs, has not failed either).
            ChecksumError: the bytes received are not the job's file.
        """
        info = self._request("GET", self._files_route(job_id, path))
        with self._sink(info, dest, on_progress) as sink:
            if info["url"] is not None:
                try:
                    with self._http.stream("GET", self._store_url(info["url"]), auth=None) as response:
                        if response.status_code >= 400:
                            response.read()
                            self._store_answer(response, "download")
                        for chunk in response.iter_bytes(CHUNK_SIZE):
                            sink.write(chunk)
                except httpx.TransportError as exc:
                    raise self._connection_error(exc) from exc
            return sink.commit()

    def run(
        self,
        spec: JobSpec | dict[str, Any],
        timeout: float | None = None,
        on_status: Callable[[JobStatusUpdate], None] | None = None,
    ) -> Job:
        """Create the job and wait for it; raise :class:`JobError` unless it completed."""
        job = self.wait(self.create_job(spec), timeout=timeout, on_status=on_status)
        if job.status != "completed":
            raise JobError(job)
        return job

    def wait(
        self,
        job: Job,
        timeout: float | None = None,
        on_status: Callable[[JobStatusUpdate], None] | None = None,
        until: Callable[[Job], bool] | None = None,
    ) -> Job:
        """Follow the job's pushed events until it ends (or ``until(job)`` holds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._events() as ws:
            ws.send(JobWatch(job_ids=[job.job_id]).encode())
            while not job.done and not (until is not None and until(job)):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise JobTimeoutError(job, float(timeout or 0))
                try:
                    frame = ws.recv(timeout=remaining)
                except TimeoutError:
                    raise JobTimeoutError(job, float(timeout or 0)) from None
                except ConnectionClosed as exc:
                    raise ConnectionError(f"event stream closed: {exc}") from exc
                for message in parse_frames(frame, FACILITATOR_TO_CLIENT):  # one frame, or a batch
                    if isinstance(message, FrameError):
                        raise GridError(f"event stream error: {message.code}: {message.message}")
                    if isinstance(message, Error):
                        if message.code == "not_found":
                            raise NotFoundError(404, message.code, message.message)
                        raise GridError(f"event stream error: {message.code}: {message.message}")
                    if isinstance(message, JobStatusUpdate) and message.job_id == job.job_id and job.apply(message):
                        if on_status is not None:
                            on_status(message)
                        if is_final(message):
                            return job
        return job

    @contextlib.contextmanager
    def _events(self) -> Iterator[ClientConnection]:
        """An authenticated connection to the facilitator's event stream."""
        try:
            connection = ws_connect(self.events_url, open_timeout=10, max_size=MAX_FRAME_BYTES)
        except (OSError, TimeoutError) as exc:
            raise self._connection_error(exc) from exc
        with connection as ws:
            handshake = ClientHandshake(self.keypair, "client")
            try:
                ws.send(handshake.receive_challenge(parse_frame(ws.recv(timeout=10), AUTH_FROM_SERVER)).encode())
                answer = parse_frame(ws.recv(timeout=10), AUTH_FROM_SERVER)
                if isinstance(answer, Error):
                    raise HandshakeError(answer.message, code=answer.code)
                handshake.receive_ok(answer)
            except (HandshakeError, FrameError, ConnectionClosed, TimeoutError) as exc:
                raise ConnectionError(f"event stream refused: {exc}") from exc
            yield ws
