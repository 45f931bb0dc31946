"""What an operator can do from the dashboard: blacklist a miner, lift a blacklisting.

Both only write :class:`~validator.models.BlacklistEntry` rows; the connector reloads the
blacklist every few seconds (:func:`validator.reputation.load_reputation`) and routes by it.
"""

from __future__ import annotations

import time

from validator.models import BlacklistEntry

__all__ = ["blacklist_miner", "lift_entry", "lift_miner"]


def blacklist_miner(
    hotkey: str, reason: str, seconds: float, operator: str, now: float | None = None
) -> BlacklistEntry:
    now = now if now is not None else time.time()
    return BlacklistEntry.objects.create(
        miner_hotkey=hotkey, reason=reason[:200], until=now + seconds, created_at=now, created_by=operator
    )


def lift_entry(entry_id: int, operator: str, now: float | None = None) -> bool:
    """Lift one active entry; ``False`` if it was already lifted (or never existed)."""
    now = now if now is not None else time.time()
    return bool(
        BlacklistEntry.objects.filter(id=entry_id, lifted_at__isnull=True).update(lifted_at=now, lifted_by=operator)
    )


def lift_miner(hotkey: str, operator: str, now: float | None = None) -> int:
    """Lift every active entry of a miner (it is routed to again); returns how many."""
    now = now if now is not None else time.time()
    active = BlacklistEntry.objects.filter(miner_hotkey=hotkey, lifted_at__isnull=True, until__gt=now)
    return active.update(lifted_at=now, lifted_by=operator)
