"""A load driver: C trivial jobs in flight through one facilitator, every event recorded, then checked.

Shared by ``bench/soak.py`` and ``tests/reliability/test_load.py`` (one copy). One
:class:`~facilitator_sdk.AsyncClient` and its event stream; each worker submits a job, follows it
to its end, and submits the next. Each job is ``/bin/sh -c 'echo TOKEN >> LOG; echo TOKEN'``
with a token of its own: the job's stdout must be its own token, and the executions log (a file
every run of a job appends to: the process runtime runs jobs on this machine) counts how often
each job really ran.

After the load, every job is read back from the facilitator (``GET /api/v1/jobs/{id}``, the
record, not only what was pushed) and :func:`check` counts:

* **lost**: a job the facilitator accepted (created) that is not in a terminal state by the
  deadline (each job gets ``job_timeout`` seconds from its submission, then the stragglers are
  read again once more).
* **duplicated**: a job run more often than it had attempts (executions log), two different
  events for one (attempt, status), or one attempt on two miners.
* **ill-ordered**: within each attempt the statuses of the facilitator's history go
  ``sent → received → accepted → executor_ready → volumes_ready → [streaming_ready] →
  execution_done`` (skips allowed, never backwards or twice) and end with at most one terminal
  status, which is last; attempts never decrease and a new attempt starts only after the
  previous one ended ``infra_failed`` (retrying); nothing follows the final status.
* **wrong output**: a completed job whose stdout is not its own token, or that never ran.
* **push missing**: a history event the client never got pushed (a job that ended on the
  facilitator while its client still waited), or a pushed event not in the history / not equal
  to it.

Everything is plain data (:class:`LoadResult`, :class:`Verdict`) for a test to assert on and a
benchmark to print.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import percentile
from facilitator_sdk import AsyncClient, JobSpec
from facilitator_sdk.errors import ApiError, GridError, JobTimeoutError
from protocol.messages import JobStatusUpdate
from protocol.status import PROGRESS_ORDER, JobStatus

__all__ = ["JobRecord", "LoadGen", "LoadResult", "Verdict", "check", "order_problems", "percentile"]

SCRIPT = 'echo "$0" >> "$1"; echo "$0"'
SCRIPT_NO_LOG = 'echo "$0"'


@dataclass
class JobRecord:
    """One job as the driver saw it. Times are ``time.perf_counter()``."""

    seq: int
    job_id: str
    token: str
    submitted: float
    created: bool = False  # the facilitator answered the POST with the job
    create_error: str | None = None
    wait_error: str | None = None
    ended: float | None = None  # when the client saw the final event
    status: str | None = None  # the final status as the client saw it
    events: list[dict[str, Any]] = field(default_factory=list)  # every pushed update, duplicates included
    server: dict[str, Any] | None = None  # GET /jobs/{id} after the load

    @property
    def latency(self) -> float | None:
        return None if self.ended is None else self.ended - self.submitted


@dataclass
class LoadResult:
    records: list[JobRecord]
    started: float
    load_ended: float  # the last job submitted ended (or timed out)
    stop_at: float | None  # when submitting stopped (duration mode)
    executions: Counter[str] | None  # token → runs, from the executions log (None: no log)
    unknown_lookups: int = 0  # jobs that could not be read back at all

    @property
    def elapsed(self) -> float:
        return self.load_ended - self.started


@dataclass
class Verdict:
    submitted: int = 0
    created: int = 0
    by_status: Counter[str] = field(default_factory=Counter)  # final status on the facilitator
    # Findings as (job id, what): a job may appear more than once in one list.
    lost: list[tuple[str, str]] = field(default_factory=list)
    duplicated: list[tuple[str, str]] = field(default_factory=list)
    ill_ordered: list[tuple[str, str]] = field(default_factory=list)
    wrong_output: list[tuple[str, str]] = field(default_factory=list)
    push_missing: list[tuple[str, str]] = field(default_factory=list)
    unknown_executions: int = 0  # tokens in the log that belong to no job of this run
    errors: Counter[str] = field(default_factory=Counter)  # "failed:nonzero_exit", "retried:…", "submit:…"
    latencies: list[float] = field(default_factory=list)  # submit → completed, seconds
    completed: int = 0
    elapsed: float = 0.0
    window: float = 0.0  # seconds of submitting (duration mode) or the whole load (count mode)
    completed_in_window: int = 0

    @property
    def jobs_per_s(self) -> float:
        """Jobs completed per second while jobs were being submitted (the drain at the end left out)."""
        return self.completed_in_window / self.window if self.window else math.nan

    def jobs(self, finding: str) -> int:
        """How many distinct jobs have a finding of this kind (``"lost"``, ``"duplicated"`` …)."""
        return len({job for job, _ in getattr(self, finding)})

    def ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000

    @property
    def ok(self) -> bool:
        return (
            not (self.lost or self.duplicated or self.ill_ordered or self.wrong_output or self.push_missing)
            and self.completed == self.created == self.submitted
        )

    def summary(self, limit: int = 5) -> str:
        """A few lines naming what went wrong (for an assertion message or stderr)."""
        lines = [
            f"submitted {self.submitted}, created {self.created}, completed {self.completed}, "
            f"final statuses {dict(self.by_status)}, errors {dict(self.errors)}",
        ]
        for name in ("lost", "duplicated", "ill_ordered", "wrong_output", "push_missing"):
            items = getattr(self, name)
            if items:
                shown = "; ".join(f"{job}: {what}" for job, what in items[:limit])
                lines.append(f"{name}: {self.jobs(name)} job(s): {shown}" + (" …" if len(items) > limit else ""))
        if self.unknown_executions:
            lines.append(f"unknown executions: {self.unknown_executions}")
        return "\n".join(lines)


class _RecordingClient(AsyncClient):
    """An AsyncClient that also hands every pushed status update, duplicates included, to ``record``.

    ``wait`` folds updates into the job and drops repeats, which is what a client wants and
    exactly what a check for duplicates must not rely on.
    """

    def __init__(self, *args: Any, record: Callable[[JobStatusUpdate], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._record = record

    async def _on_event(self, connection: Any, message: Any) -> None:
        if isinstance(message, JobStatusUpdate):
            self._record(message)
        await super()._on_event(connection, message)


class LoadGen:
    """Keep ``in_flight`` jobs going through the facilitator at ``url``.

    Args:
        executions_log: the file each job appends its token to (created empty); ``None``: jobs
            only print their token (no count of runs).
        job_timeout: how long one job may take from submission to its final event.
        progress: called with a line every ``progress_every`` seconds.
    """

    def __init__(
        self,
        url: str,
        key: Path | str,
        *,
        in_flight: int = 100,
        executions_log: Path | None = None,
        job_timeout: float = 120.0,
        progress: Callable[[str], None] | None = None,
        progress_every: float = 10.0,
    ) -> None:
        self.url, self.key = url, key
        self.in_flight = in_flight
        self.executions_log = executions_log
        self.job_timeout = job_timeout
        self.progress = progress
        self.progress_every = progress_every
        self.records: list[JobRecord] = []
        self._by_id: dict[str, JobRecord] = {}
        self._running = 0
        self._ended = 0
        self._started = 0.0

    # -- the load ------------------------------------------------------------------------------

    async def run(self, jobs: int | None = None, duration: float | None = None) -> LoadResult:
        """Submit ``jobs`` jobs, or keep submitting for ``duration`` seconds; then wait for the
        last ones, read every job back and count the runs. One of the two must be given."""
        if (jobs is None) == (duration is None):
            raise ValueError("give jobs or duration")
        if self.executions_log is not None:
            self.executions_log.parent.mkdir(parents=True, exist_ok=True)
            self.executions_log.write_text("")
        async with _RecordingClient(self.url, self.key, record=self._on_update) as client:
            await client._ensure_stream()  # opened once, before the clock starts
            self._started = time.perf_counter()
            stop_at = None if duration is None else self._started + duration
            budget = [jobs]

            def another() -> bool:
                if stop_at is not None:
                    return time.perf_counter() < stop_at
                if budget[0] <= 0:
                    return False
                budget[0] -= 1
                return True

            async def worker() -> None:
                while another():
                    await self._one(client)

            reporter = asyncio.create_task(self._report()) if self.progress else None
            try:
                await asyncio.gather(*(worker() for _ in range(self.in_flight)))
            finally:
                if reporter is not None:
                    reporter.cancel()
            load_ended = time.perf_counter()
            unknown = await self._read_back(client)
        return LoadResult(self.records, self._started, load_ended, stop_at, self._executions(), unknown)

    async def _one(self, client: AsyncClient) -> None:
        job_id = str(uuid.uuid4())
        record = JobRecord(len(self.records), job_id, f"t{len(self.records)}-{secrets.token_hex(6)}", 0.0)
        self.records.append(record)
        self._by_id[job_id] = record
        if self.executions_log is not None:
            command = ["/bin/sh", "-c", SCRIPT, record.token, str(self.executions_log)]
        else:
            command = ["/bin/sh", "-c", SCRIPT_NO_LOG, record.token]
        spec = JobSpec(command=command)
        self._running += 1
        try:
            record.submitted = time.perf_counter()
            try:
                job = await client.create_job(spec, job_id=job_id)
            except GridError as exc:
                record.create_error = _error_name(exc)
                return
            record.created = True
            try:
                await client.wait(job, timeout=max(1.0, record.submitted + self.job_timeout - time.perf_counter()))
            except JobTimeoutError:
                record.wait_error = "JobTimeoutError"
                return
            except GridError as exc:
                record.wait_error = _error_name(exc)
                return
            record.ended = time.perf_counter()
            record.status = job.status
        finally:
            self._running -= 1
            self._ended += 1

    def _on_update(self, update: JobStatusUpdate) -> None:
        record = self._by_id.get(update.job_id)
        if record is not None:
            record.events.append(update.model_dump(mode="json"))

    async def _report(self) -> None:
        last_time, last_ended = self._started, 0
        while True:
            await asyncio.sleep(self.progress_every)
            now = time.perf_counter()
            rate = (self._ended - last_ended) / (now - last_time)
            completed = sum(1 for record in self.records if record.status == JobStatus.COMPLETED)
            problems = sum(1 for record in self.records if record.create_error or record.wait_error)
            problems += sum(1 for record in self.records if record.status not in (None, JobStatus.COMPLETED))
            assert self.progress is not None
            self.progress(
                f"{now - self._started:6.0f}s: {len(self.records)} submitted, {completed} completed, "
                f"{self._running} in flight, {rate:.1f} jobs/s over the last {now - last_time:.0f}s, "
                f"{problems} not completed"
            )
            last_time, last_ended = now, self._ended

    # -- afterwards ----------------------------------------------------------------------------

    async def _read_back(self, client: AsyncClient, rounds: int = 2, pause: float = 2.0) -> int:
        """Read every job from the facilitator; jobs not ended yet are read again after ``pause``."""
        semaphore = asyncio.Semaphore(16)

        async def read(record: JobRecord) -> None:
            async with semaphore:
                for attempt in range(3):
                    try:
                        job = await client.get_job(record.job_id)
                        result = job.result
                        record.server = {
                            "status": job.status,
                            "attempt": job.attempt,
                            "history": job.history,
                            "failure": job.failure,
                            "result": result.data if result is not None else None,
                        }
                        return
                    except ApiError as exc:
                        if exc.status == 404:
                            record.server = None
                            return
                        if attempt == 2:
                            raise
                    except GridError:
                        if attempt == 2:
                            raise
                    await asyncio.sleep(0.5)

        pending = list(self.records)
        for round_ in range(rounds):
            await asyncio.gather(*(read(record) for record in pending), return_exceptions=True)
            pending = [r for r in pending if r.server is not None and not _terminal(r.server.get("status"))]
            if not pending or round_ == rounds - 1:
                break
            await asyncio.sleep(pause)
        return sum(1 for record in self.records if record.server is None and record.created)

    def _executions(self) -> Counter[str] | None:
        if self.executions_log is None:
            return None
        return Counter(line for line in self.executions_log.read_text().splitlines() if line)


def _error_name(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}:{code}" if code else type(exc).__name__


def _terminal(status: object) -> bool:
    try:
        return JobStatus(str(status)).is_terminal
    except ValueError:
        return False


def _normal(payload: dict[str, Any]) -> dict[str, Any]:
    return JobStatusUpdate.model_validate(payload).model_dump(mode="json")


def order_problems(history: list[dict[str, Any]]) -> list[str]:
    """What is out of order in one job's history (events in the order they were stored)."""
    problems: list[str] = []
    attempt, rank, attempt_ended, final = 0, -1, False, False
    for event in history:
        number, status = int(event.get("attempt", 1)), JobStatus(event["status"])
        where = f"{status.value}@{number}"
        if final:
            problems.append(f"{where} after the final status")
            continue
        if number < attempt:
            problems.append(f"{where} after attempt {attempt}")
            continue
        if number > attempt:
            if attempt and not attempt_ended:
                problems.append(f"attempt {number} began before attempt {attempt} ended")
            attempt, rank, attempt_ended = number, -1, False
        if attempt_ended:
            problems.append(f"{where} after its attempt ended")
            continue
        if status.is_terminal:
            attempt_ended = True
            final = not (event.get("detail") or {}).get("retrying")
            continue
        order = PROGRESS_ORDER[status]
        if order <= rank:
            problems.append(f"{where} after a later or equal status of its attempt")
        rank = max(rank, order)
    return problems


def check(result: LoadResult) -> Verdict:
    verdict = Verdict(submitted=len(result.records), elapsed=result.elapsed)
    window_end = result.load_ended if result.stop_at is None else result.stop_at
    verdict.window = window_end - result.started
    tokens = {record.token for record in result.records}
    if result.executions is not None:
        verdict.unknown_executions = sum(count for token, count in result.executions.items() if token not in tokens)
    for record in result.records:
        job = record.job_id
        if record.create_error:
            verdict.errors[f"submit:{record.create_error}"] += 1
        if record.wait_error:
            verdict.errors[f"wait:{record.wait_error}"] += 1
        server = record.server
        if server is None:
            if record.created:
                verdict.lost.append((job, "the facilitator does not know it"))
            continue  # never created (the POST failed and nothing was stored)
        verdict.created += 1
        status = server.get("status")
        verdict.by_status[str(status)] += 1
        history = server.get("history") or []
        if not _terminal(status):
            verdict.lost.append((job, f"still {status} (attempt {server.get('attempt')})"))
        elif status != JobStatus.COMPLETED:
            reason = (server.get("failure") or {}).get("reason", "?")
            verdict.errors[f"{status}:{reason}"] += 1
        for event in history:
            if event.get("detail", {}).get("retrying"):
                verdict.errors[f"retried:{(event.get('failure') or {}).get('reason', '?')}"] += 1
        # -- order
        verdict.ill_ordered.extend((job, problem) for problem in order_problems(history))
        if _terminal(status) and (not history or history[-1].get("status") != status):
            verdict.ill_ordered.append((job, f"ended {status} but its history ends {history[-1:]}"))
        # -- duplicates
        attempts = max([int(event.get("attempt", 1)) for event in history] + [int(server.get("attempt") or 1)])
        miners: dict[int, set[str]] = {}
        for event in history:
            if event.get("miner"):
                miners.setdefault(int(event.get("attempt", 1)), set()).add(event["miner"])
        for number, names in sorted(miners.items()):
            if len(names) > 1:
                verdict.duplicated.append((job, f"attempt {number} on {len(names)} miners"))
        pushed: dict[tuple[int, str], dict[str, Any]] = {}
        for event in record.events:
            key = (int(event.get("attempt", 1)), event["status"])
            if key in pushed and pushed[key] != event:
                verdict.duplicated.append((job, f"two different {key[1]} events for attempt {key[0]}"))
            pushed.setdefault(key, event)
        runs = result.executions.get(record.token, 0) if result.executions is not None else None
        if runs is not None and runs > attempts:
            verdict.duplicated.append((job, f"ran {runs} times in {attempts} attempt(s)"))
        # -- output
        if status == JobStatus.COMPLETED:
            verdict.completed += 1
            stdout = ((server.get("result") or {}).get("stdout") or "").strip()
            if stdout != record.token:
                verdict.wrong_output.append((job, f"stdout {stdout[:40]!r} is not its token {record.token!r}"))
            if runs == 0:
                verdict.wrong_output.append((job, "completed but never ran"))
            if record.latency is not None and record.status == JobStatus.COMPLETED:
                verdict.latencies.append(record.latency)
                if record.ended is not None and record.ended <= window_end:
                    verdict.completed_in_window += 1
        # -- what was pushed vs what was stored
        if record.created and _terminal(status):
            stored = {(int(event.get("attempt", 1)), event["status"]): event for event in history}
            for key in stored.keys() - pushed.keys():
                verdict.push_missing.append((job, f"{key[1]}@{key[0]} never pushed"))
            for key in pushed.keys() - stored.keys():
                verdict.push_missing.append((job, f"{key[1]}@{key[0]} pushed but not in the history"))
            for key in pushed.keys() & stored.keys():
                if _normal(pushed[key]) != _normal(stored[key]):
                    verdict.duplicated.append((job, f"the pushed {key[1]}@{key[0]} differs from the stored one"))
    return verdict
