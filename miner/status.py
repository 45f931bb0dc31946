"""The miner's status for its operator: ``GET /api/v1/status`` (DESIGN.md §10).

Only a request signed with the miner's own key (``protocol.requests``: signature, freshness, a
nonce used once) is answered; the operator holds the key file. The body::

    {"role": "miner", "hotkey": "...", "at": 1700000000.0,
     "validators": [{"hotkey": "...", "since": 1700000000.0}],
     "executor_classes": {"cpu.small": {"total": 4, "free": 3, "busy": 1, "warm": 2, "warm_target": 2}},
     "streaming_ports": {"used": 0, "total": 100},
     "recent_jobs": [{"job_id": "...", "validator": "...", "executor_class": "cpu.small",
                      "status": "completed", "stage": null, "reason": null,
                      "started": 1700000000.0, "ended": 1700000001.0}],
     "receipts": 12}

``recent_jobs`` are the last :data:`RECENT_JOBS` jobs this process accepted, newest first, as
the consumers saw them pass (kept in memory: a restarted miner starts an empty list).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

from django.http import HttpRequest

from miner.executors.pool import ExecutorPool, SlotState
from miner.models import MinerReceipt
from node.identity import own_keypair
from node.signed_requests import verified_request
from protocol.errors import RequestAuthError
from protocol.messages import Message
from protocol.requests import NonceStore
from protocol.status import JobStatus

__all__ = ["RECENT_JOBS", "MinerStatus", "RecentJob", "authorize", "miner_status"]

RECENT_JOBS = 20
NONCE_CAPACITY = 10_000  # an operator's requests, not a client's traffic

# What each report an executor sends (or the miner sends for it) says of the job.
_REPORTED = {
    "executor.ready": JobStatus.EXECUTOR_READY,
    "job.volumes_ready": JobStatus.VOLUMES_READY,
    "job.streaming_ready": JobStatus.STREAMING_READY,
    "job.execution_done": JobStatus.EXECUTION_DONE,
    "job.finished": JobStatus.COMPLETED,
    "job.failed": JobStatus.FAILED,
    "job.infra_failed": JobStatus.INFRA_FAILED,
}


@dataclass
class RecentJob:
    job_id: str
    validator: str
    executor_class: str
    started: float
    status: str = JobStatus.ACCEPTED.value
    stage: str | None = None
    reason: str | None = None
    ended: float | None = None


class MinerStatus:
    """What this miner process saw: its validators' connections and its last jobs."""

    def __init__(self, size: int = RECENT_JOBS) -> None:
        self.size = size
        self.validators: dict[str, tuple[str, float]] = {}  # channel name → (hotkey, since)
        self.jobs: OrderedDict[str, RecentJob] = OrderedDict()
        self.nonces = NonceStore(capacity=NONCE_CAPACITY)

    def __repr__(self) -> str:
        return f"<MinerStatus {len(self.validators)} validator(s), {len(self.jobs)} recent job(s)>"

    def validator_connected(self, channel: str, hotkey: str) -> None:
        self.validators[channel] = (hotkey, time.time())

    def validator_gone(self, channel: str) -> None:
        self.validators.pop(channel, None)

    def job_started(self, job_id: str, validator: str, executor_class: str) -> None:
        self.jobs[job_id] = RecentJob(job_id, validator, executor_class, started=time.time())
        self.jobs.move_to_end(job_id)
        while len(self.jobs) > self.size:
            self.jobs.popitem(last=False)

    def job_reported(self, message: Message) -> None:
        """Follow a report about a job (``job.finished``, ``job.failed`` …) on its way to the validator."""
        status = _REPORTED.get(message.type)
        job = self.jobs.get(getattr(message, "job_id", ""))
        if status is None or job is None:
            return
        failure = getattr(message, "failure", None)
        self._set(job, status, failure.stage if failure else None, failure.reason if failure else None)

    def job_cancelled(self, job_id: str, why: str) -> None:
        if (job := self.jobs.get(job_id)) is not None:
            self._set(job, JobStatus.CANCELLED, None, why)

    @staticmethod
    def _set(job: RecentJob, status: JobStatus, stage: str | None, reason: str | None) -> None:
        if job.ended is not None:
            return  # the first end wins: a cancel's aftermath is not news
        job.status, job.stage, job.reason = status.value, stage and str(stage), reason
        if status.is_terminal:
            job.ended = time.time()

    async def describe(self, pool: ExecutorPool) -> dict[str, Any]:
        """The status body (see the module docstring)."""
        classes = {}
        for name, capacity in pool.manifest().items():
            warm = sum(
                1
                for slot in pool.slots.values()
                if slot.executor_class == name and slot.job_id is None and slot.state is SlotState.IDLE
            )
            classes[name] = {
                "total": capacity.total,
                "free": capacity.free,
                "busy": capacity.total - capacity.free,
                "warm": warm,
                "warm_target": pool.classes[name].warm,
            }
        ports = pool.ports
        total = len(ports.ports) if ports is not None else 0
        return {
            "role": "miner",
            "hotkey": own_keypair().hotkey,
            "at": time.time(),
            "validators": [{"hotkey": hotkey, "since": since} for hotkey, since in self.validators.values()],
            "executor_classes": classes,
            "streaming_ports": {"used": total - (ports.free if ports is not None else 0), "total": total},
            "recent_jobs": [asdict(job) for job in reversed(self.jobs.values())],
            "receipts": await MinerReceipt.objects.acount(),
        }


_status = MinerStatus()


def miner_status() -> MinerStatus:
    """The miner process's one status record."""
    return _status


def authorize(request: HttpRequest) -> None:
    """Let through only a fresh request signed with this miner's own key, its nonce never seen.

    Raises:
        RequestAuthError: ``missing_signature``, ``stale_request``, ``bad_signature``, ``replayed``
            (answer 401), ``forbidden`` (another key: 403) or ``busy`` (429).
    """
    signed = verified_request(request)
    if signed.hotkey != own_keypair().hotkey:
        raise RequestAuthError("only the miner's own key may read its status", code="forbidden")
    miner_status().nonces.claim(signed.nonce)
