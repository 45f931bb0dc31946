"""The validator at a glance, for its operator: ``grid validator status`` (DESIGN.md §10).

Read from the connector's status file (``validator.status``) and the validator's database, with
the dashboard's queries. :func:`overview` returns plain JSON-able data::

    {"hotkey": "...", "at": 1700000000.0,
     "connector": {"status_file": "...", "running": true, "pid": 1234, "facilitator": true,
                   "miners": {"<hotkey>": true}, "since": 1700000000.0},
     "in_flight": [{"job_id", "status", "miner", "executor_class", "attempt", "created"}],
     "last_hour": {"completed": 3, "failed": 1, ...},
     "miners": [{"hotkey", "address", "connected", "classes": {"cpu.small": {"free", "total"}}, "last_seen",
                 "incidents_last_hour", "blacklisted_until"}],
     "incidents_last_hour": [{"kind", "miner", "job_id", "at", "message"}],
     "blacklist": [{"miner", "reason", "until", "created_by"}],
     "scores": {"at": 1700000000.0, "sent": true} | null}
"""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Count

from protocol.keys import Keypair
from validator.dashboard.queries import (
    INCIDENT_WINDOW_S,
    active_blacklist,
    in_flight_jobs,
    latest_scores,
    miner_rows,
)
from validator.models import Incident, MinerRecord, ValidatorJob

__all__ = ["IN_FLIGHT_SHOWN", "connector_state", "overview"]

IN_FLIGHT_SHOWN = 50
INCIDENTS_SHOWN = 20


def connector_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What the connector's status file says, and whether the process that wrote it is alive here."""
    state: dict[str, Any] = {"status_file": str(path), "running": False}
    try:
        written = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return state
    pid = written.get("pid")
    try:
        os.kill(int(pid), 0)
        alive = True
    except (TypeError, ValueError, ProcessLookupError):
        alive = False
    except PermissionError:
        alive = True  # someone else's process: it exists
    return {
        **state,
        "running": alive,
        "pid": pid,
        "facilitator": bool(written.get("facilitator")),
        "miners": written.get("miners") or {},
        "since": written.get("at"),
    }


def overview(now: float | None = None) -> dict[str, Any]:
    """The operator's report (see the module docstring)."""
    now = time.time() if now is None else now
    hour_ago = now - INCIDENT_WINDOW_S
    created_after = datetime.datetime.fromtimestamp(hour_ago, tz=datetime.UTC)
    last_hour = dict(
        ValidatorJob.objects.filter(created_at__gte=created_after)
        .order_by()
        .values_list("status")
        .annotate(n=Count("job_id"))
    )
    blacklist = active_blacklist(now)
    sheet = latest_scores()
    key = Path(settings.GRID_KEY_FILE)  # read, never created: this process is not the validator
    return {
        "hotkey": Keypair.load(key).hotkey if key.exists() else None,
        "at": now,
        "connector": connector_state(settings.VALIDATOR_STATUS_FILE),
        "in_flight": [
            {
                "job_id": job.job_id,
                "status": job.current_status,
                "miner": job.last_miner or job.miner_hotkey,
                "executor_class": job.executor_class or job.spec.get("executor_class", ""),
                "attempt": job.attempt,
                "created": job.created_at.timestamp(),
            }
            for job in in_flight_jobs(IN_FLIGHT_SHOWN)
        ],
        "last_hour": last_hour,
        "miners": [
            {
                "hotkey": row.hotkey,
                "address": row.record.address,
                "connected": row.record.connected,
                "classes": {c["name"]: {"free": c["free"], "total": c["total"]} for c in row.classes},
                "last_seen": row.record.last_seen.timestamp(),
                "incidents_last_hour": row.recent_incidents,
                "blacklisted_until": row.blacklisted.until if row.blacklisted else None,
            }
            for row in miner_rows(list(MinerRecord.objects.order_by("hotkey")), now)
        ],
        "incidents_last_hour": [
            {"kind": i.kind, "miner": i.miner_hotkey, "job_id": i.job_id, "at": i.at, "message": i.message}
            for i in Incident.objects.filter(at__gte=hour_ago).order_by("-at")[:INCIDENTS_SHOWN]
        ],
        "blacklist": [
            {"miner": e.miner_hotkey, "reason": e.reason, "until": e.until, "created_by": e.created_by}
            for e in blacklist.values()
        ],
        "scores": {"at": sheet.at, "sent": sheet.sent} if sheet is not None else None,
    }
