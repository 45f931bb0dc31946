"""The validator's periodic tasks (``GRID_PERIODIC_TASKS``, run by :mod:`grid.periodic` or Celery beat)."""

from __future__ import annotations

from celery import shared_task

from validator import registry

__all__ = ["sync_registry"]


@shared_task(name="validator.tasks.sync_registry")
def sync_registry() -> int | None:
    """Fetch the facilitator's registry (the connector follows it); returns the version now held."""
    snapshot = registry.sync()
    return snapshot.version if snapshot is not None else None
