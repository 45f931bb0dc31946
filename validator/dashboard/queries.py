"""What the dashboard's pages read: small queries over the validator's tables (sync ORM)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.db.models import Case, Count, F, Max, OuterRef, Q, QuerySet, Subquery, When
from django.db.models.functions import Coalesce

from protocol.status import TERMINAL_STATUSES, JobStatus
from validator.models import BlacklistEntry, Incident, JobEvent, MinerRecord, PublishedScores, ValidatorJob

__all__ = [
    "STATUSES",
    "TERMINAL",
    "MinerRow",
    "Step",
    "active_blacklist",
    "event_payload",
    "events_after",
    "in_flight_jobs",
    "job_counts",
    "job_history",
    "latest_event_id",
    "latest_scores",
    "miner_rows",
    "with_progress",
]

STATUSES = [status.value for status in JobStatus]
TERMINAL = sorted(status.value for status in TERMINAL_STATUSES)
INCIDENT_WINDOW_S = 3600.0
MESSAGE_CHARS = 300  # of a failure message pushed live; the job's page has it whole


def with_progress(jobs: QuerySet[ValidatorJob]) -> QuerySet[ValidatorJob]:
    """``jobs`` with their latest event (``last_status``, ``last_miner``, ``last_attempt``, ``last_at``)
    and ``current_status``: the connector sets ``ValidatorJob.status`` when a job ends, so a job in
    flight is where its latest event says."""
    latest = JobEvent.objects.filter(job_id=OuterRef("job_id")).order_by("-at", "-id")
    return jobs.annotate(
        last_status=Subquery(latest.values("status")[:1]),
        last_miner=Subquery(latest.values("miner_hotkey")[:1]),
        last_attempt=Subquery(latest.values("attempt")[:1]),
        last_at=Subquery(latest.values("at")[:1]),
    ).annotate(
        current_status=Case(
            When(status__in=TERMINAL, then=F("status")), default=Coalesce(F("last_status"), F("status"))
        )
    )


def job_counts() -> list[tuple[str, int]]:
    """``[("in_flight", n), (terminal status, n), …]``, every terminal status listed, even at 0."""
    counts = dict(ValidatorJob.objects.order_by().values_list("status").annotate(n=Count("job_id")))
    in_flight = sum(n for status, n in counts.items() if status not in TERMINAL)
    ordered = [status for status in STATUSES if status in TERMINAL]
    return [("in_flight", in_flight), *((status, counts.get(status, 0)) for status in ordered)]


def in_flight_jobs(limit: int = 500) -> list[ValidatorJob]:
    """The newest jobs not ended yet, with their progress (:func:`with_progress`)."""
    return list(with_progress(ValidatorJob.objects.exclude(status__in=TERMINAL)).order_by("-created_at")[:limit])


def latest_event_id() -> int:
    return JobEvent.objects.aggregate(last=Max("id"))["last"] or 0


def event_payload(row: dict) -> dict:
    """What the browser gets for one :class:`JobEvent` row (``row``: its ``values()``)."""
    failure = (row.get("detail") or {}).get("failure") or {}
    return {
        "id": row["id"],
        "job_id": row["job_id"],
        "status": row["status"],
        "attempt": row["attempt"],
        "miner": row["miner_hotkey"],
        "at": row["at"],
        "reason": str(failure.get("reason") or ""),
        "message": str(failure.get("message") or "")[:MESSAGE_CHARS],
        "terminal": row["status"] in TERMINAL,
    }


def events_after(after: int, limit: int = 500) -> list[dict]:
    """Job events with an id above ``after``, oldest first, as :func:`event_payload` dicts."""
    rows = JobEvent.objects.filter(id__gt=after).order_by("id")[:limit]
    fields = ("id", "job_id", "status", "attempt", "miner_hotkey", "at", "detail")
    return [event_payload(row) for row in rows.values(*fields)]


@dataclass(frozen=True)
class Step:
    """One status of a job's history, with the time since the one before and since the first."""

    event: JobEvent
    since_previous: float | None
    since_start: float


def job_history(job_id: str) -> list[Step]:
    events = list(JobEvent.objects.filter(job_id=job_id).order_by("at", "id"))
    steps: list[Step] = []
    for index, event in enumerate(events):
        previous = events[index - 1].at if index else None
        steps.append(Step(event, None if previous is None else event.at - previous, event.at - events[0].at))
    return steps


def active_blacklist(now: float | None = None) -> dict[str, BlacklistEntry]:
    """The entry that keeps each blacklisted miner out longest, by hotkey."""
    now = now if now is not None else time.time()
    entries: dict[str, BlacklistEntry] = {}
    for entry in BlacklistEntry.objects.filter(lifted_at__isnull=True, until__gt=now).order_by("until"):
        entries[entry.miner_hotkey] = entry
    return entries


def latest_scores() -> PublishedScores | None:
    return PublishedScores.objects.order_by("-at").first()


@dataclass
class MinerRow:
    """A miner as the miners page lists it."""

    record: MinerRecord
    classes: list[dict] = field(default_factory=list)  # [{name, free, total, spec}] from the manifest
    scores: dict[str, float] = field(default_factory=dict)
    incidents: int = 0
    recent_incidents: int = 0
    blacklisted: BlacklistEntry | None = None

    @property
    def hotkey(self) -> str:
        return self.record.hotkey


def manifest_classes(manifest: dict) -> list[dict]:
    classes = []
    for name, capacity in sorted((manifest or {}).items()):
        capacity = capacity if isinstance(capacity, dict) else {}
        spec = capacity.get("spec") if isinstance(capacity.get("spec"), dict) else {}
        classes.append(
            {
                "name": name,
                "free": capacity.get("free"),
                "total": capacity.get("total"),
                "spec": ", ".join(f"{key}={value}" for key, value in sorted(spec.items()) if value is not None),
            }
        )
    return classes


def miner_rows(records: list[MinerRecord], now: float | None = None) -> list[MinerRow]:
    """Manifests, latest scores, incident counts and blacklist state of ``records``, in a few queries."""
    now = now if now is not None else time.time()
    hotkeys = [record.hotkey for record in records]
    counts = {
        hotkey: (total, recent)
        for hotkey, total, recent in Incident.objects.filter(miner_hotkey__in=hotkeys)
        .order_by()
        .values_list("miner_hotkey")
        .annotate(total=Count("id"), recent=Count("id", filter=Q(at__gte=now - INCIDENT_WINDOW_S)))
    }
    blacklist = active_blacklist(now)
    sheet = latest_scores()
    scores = (sheet.sheet.get("scores") or {}) if sheet is not None else {}
    rows = []
    for record in records:
        total, recent = counts.get(record.hotkey, (0, 0))
        rows.append(
            MinerRow(
                record=record,
                classes=manifest_classes(record.manifest),
                scores=scores.get(record.hotkey) or {},
                incidents=total,
                recent_incidents=recent,
                blacklisted=blacklist.get(record.hotkey),
            )
        )
    return rows
