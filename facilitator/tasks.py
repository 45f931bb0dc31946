"""The facilitator's periodic tasks (``GRID_PERIODIC_TASKS``, run by :mod:`node.periodic` or Celery beat)."""

from __future__ import annotations

from celery import shared_task

from facilitator.control.dispatch import dispatch_queued

__all__ = ["dispatch_queued_tasks"]


@shared_task(name="facilitator.tasks.dispatch_queued_tasks")
def dispatch_queued_tasks() -> int:
    """Queued tasks that no dispatch took (it failed, or the facilitator restarted): batch jobs now."""
    return dispatch_queued(send=False)
