"""How much the validator trusts each miner right now: the blacklist and recent incidents.

Routing reads it on every decision, so it lives in memory in the connector process;
:func:`load_reputation` rebuilds it from the database (incidents in the window, active blacklist
entries, operator actions from the dashboard included) every few seconds, and the connector
notes its own incidents at once so the next decision already sees them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["Reputation", "load_reputation"]

INCIDENT_WINDOW_S = 3600.0


@dataclass
class Reputation:
    """``weight(miner)`` = 1 / (1 + incidents in the window); 0 while blacklisted."""

    window_s: float = INCIDENT_WINDOW_S
    incidents: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    blacklisted_until: dict[str, float] = field(default_factory=dict)
    blacklist_reasons: dict[str, str] = field(default_factory=dict)

    def recent_incidents(self, hotkey: str, now: float | None = None) -> int:
        since = (now if now is not None else time.time()) - self.window_s
        return sum(1 for at in self.incidents.get(hotkey, ()) if at >= since)

    def is_blacklisted(self, hotkey: str, now: float | None = None) -> bool:
        return self.blacklisted_until.get(hotkey, 0.0) > (now if now is not None else time.time())

    def weight(self, hotkey: str, now: float | None = None) -> float:
        now = now if now is not None else time.time()
        if self.is_blacklisted(hotkey, now):
            return 0.0
        return 1.0 / (1.0 + self.recent_incidents(hotkey, now))

    def note_incident(self, hotkey: str, at: float | None = None) -> None:
        self.incidents[hotkey].append(at if at is not None else time.time())

    def note_blacklist(self, hotkey: str, until: float, reason: str) -> None:
        if until > self.blacklisted_until.get(hotkey, 0.0):
            self.blacklisted_until[hotkey] = until
            self.blacklist_reasons[hotkey] = reason


def load_reputation(window_s: float = INCIDENT_WINDOW_S, now: float | None = None) -> Reputation:
    """The reputation the database holds now (sync ORM: call through ``sync_to_async``)."""
    from validator.models import BlacklistEntry, Incident

    now = now if now is not None else time.time()
    reputation = Reputation(window_s=window_s)
    for hotkey, at in Incident.objects.filter(at__gte=now - window_s).values_list("miner_hotkey", "at"):
        reputation.note_incident(hotkey, at)
    active = BlacklistEntry.objects.filter(lifted_at__isnull=True, until__gt=now)
    for hotkey, until, reason in active.values_list("miner_hotkey", "until", "reason"):
        reputation.note_blacklist(hotkey, until, reason)
    return reputation
