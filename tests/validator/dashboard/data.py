"""Rows for the dashboard's tests, written the way the connector's ledger writes them."""

from __future__ import annotations

import itertools
import time

from protocol.keys import Keypair
from validator.models import (
    BlacklistEntry,
    Incident,
    JobEvent,
    MinerRecord,
    PublishedScores,
    ReceiptRecord,
    RoutingDecision,
    ValidatorJob,
)

_ids = itertools.count(1)
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
HOSTILE_ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


def hotkey() -> str:
    return Keypair.generate().hotkey


def job_id() -> str:
    return f"job{next(_ids):04d}" + "0" * 25


def miner(key: str | None = None, *, connected: bool = True, free: int = 2, total: int = 4, **fields) -> MinerRecord:
    manifest = {"cpu.small": {"total": total, "free": free, "spec": {"cpu": 1, "memory_mb": 512}}}
    return MinerRecord.objects.create(
        hotkey=key or hotkey(),
        address="ws://127.0.0.1:9/ws/validator/",
        manifest=manifest,
        connected=connected,
        **fields,
    )


def job(
    status: str = "received",
    miner_hotkey: str = "",
    *,
    statuses: list[str] | None = None,
    start: float | None = None,
    step: float = 0.5,
    failure: dict | None = None,
    key: str | None = None,
) -> ValidatorJob:
    """A job and one event per status it passed (``statuses``, default: up to ``status``), ``step`` s apart."""
    key = key or job_id()
    row = ValidatorJob.objects.create(
        job_id=key,
        client_hotkey="c" * 64,
        spec={"command": ["true"]},
        client_signature="s" * 128,
        status=status,
        miner_hotkey=miner_hotkey,
        executor_class="cpu.small",
        failure=failure,
    )
    start = start if start is not None else time.time() - 10
    for index, name in enumerate(statuses or [status]):
        event(key, name, miner_hotkey if name != "received" else "", at=start + index * step, failure=failure)
    return row


def event(
    job: str,
    status: str,
    miner_hotkey: str = "",
    *,
    at: float | None = None,
    attempt: int = 1,
    failure: dict | None = None,
) -> JobEvent:
    detail = {"failure": failure} if failure and status in ("failed", "infra_failed", "rejected") else {}
    return JobEvent.objects.create(
        job_id=job, status=status, attempt=attempt, miner_hotkey=miner_hotkey, at=at or time.time(), detail=detail
    )


def decision(job: str, chosen: str, others: list[str]) -> RoutingDecision:
    candidates = [{"hotkey": chosen, "free": 2, "weight": 1.0, "skipped": None}]
    candidates += [{"hotkey": other, "free": 0, "weight": 0.0, "skipped": "blacklisted"} for other in others]
    return RoutingDecision.objects.create(
        job_id=job,
        attempt=1,
        at=time.time(),
        executor_class="cpu.small",
        chosen=chosen,
        reason="weighted_choice",
        candidates=candidates,
    )


def receipt(job: str, miner_hotkey: str, kind: str = "finished") -> ReceiptRecord:
    return ReceiptRecord.objects.create(
        job_id=job,
        attempt=1,
        kind=kind,
        validator_hotkey="v" * 64,
        miner_hotkey=miner_hotkey,
        executor_class="cpu.small",
        at=time.time(),
        status="completed" if kind == "finished" else "",
        receipt={"payload": {"kind": kind}},
    )


def incident(miner_hotkey: str, message: str = "crashed", job: str = "", kind: str = "infra_failure") -> Incident:
    return Incident.objects.create(
        miner_hotkey=miner_hotkey, kind=kind, job_id=job, at=time.time(), message=message, evidence={"why": message}
    )


def blacklisted(
    miner_hotkey: str, reason: str = "cheated", seconds: float = 3600, by: str = "validator"
) -> BlacklistEntry:
    now = time.time()
    return BlacklistEntry.objects.create(
        miner_hotkey=miner_hotkey, reason=reason, until=now + seconds, created_at=now, created_by=by
    )


def scores(sheet: dict[str, dict[str, float]]) -> PublishedScores:
    now = time.time()
    return PublishedScores.objects.create(
        at=now,
        sheet={"validator_hotkey": "v" * 64, "at": now, "window_s": 3600.0, "scores": sheet, "signature": "a" * 128},
    )
