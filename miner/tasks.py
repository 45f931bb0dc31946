"""The miner's periodic tasks (``GRID_PERIODIC_TASKS``, run by :mod:`node.periodic` or Celery beat)."""

from __future__ import annotations

from celery import shared_task

from miner import registry

__all__ = ["sync_registry"]


@shared_task(name="miner.tasks.sync_registry")
def sync_registry() -> int | None:
    """Announce this miner's address and fetch the registry; returns the version now held."""
    snapshot = registry.sync()
    return snapshot.version if snapshot is not None else None
