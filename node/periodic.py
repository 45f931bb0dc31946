"""The periodic work of a role (registry sync, receipts fetch, scoring, blacklist expiry).

Each role's settings list its periodic tasks in ``GRID_PERIODIC_TASKS`` as ``(task path,
seconds)``; a task is a plain function, registered with Celery as a ``shared_task`` in its app's
``tasks.py``. Who runs them depends on ``GRID_PERIODIC``:

* ``embedded`` (the default): :class:`EmbeddedBeat` calls the same functions on a thread of the
  role's own process. No broker, nothing else to start.
* ``celery``: Celery beat schedules them on the Redis broker and Celery workers run them
  (``celery -A grid.celery worker --beat``; :mod:`grid.celery` builds the schedule from the same
  list). The role's process then runs none itself.

A task that raises is logged and tried again at its next turn; one slow task delays only the
tasks queued behind it on the embedded thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import close_old_connections
from django.utils.module_loading import import_string

from node.memory import release_free_heap

__all__ = ["EmbeddedBeat", "periodic_tasks", "start_embedded_beat"]

log = logging.getLogger("grid.periodic")


def periodic_tasks() -> list[tuple[str, float]]:
    """This role's ``(task path, seconds)`` pairs."""
    return [(path, float(seconds)) for path, seconds in getattr(settings, "GRID_PERIODIC_TASKS", [])]


class EmbeddedBeat:
    """Runs periodic tasks on one daemon thread, each first right away, then every ``seconds``."""

    def __init__(self, tasks: Iterable[tuple[str, float]], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._tasks = [(path, import_string(path), seconds) for path, seconds in tasks]
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs: dict[str, int] = {path: 0 for path, _, _ in self._tasks}

    def start(self) -> EmbeddedBeat:
        if self._tasks:
            self._thread = threading.Thread(target=self._loop, name="grid-periodic", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_due(self, due: dict[str, float]) -> float:
        """Run every task whose time has come; returns how long until the next one."""
        now = self._clock()
        for path, function, seconds in self._tasks:
            if due.get(path, now) > now:
                continue
            try:
                function()
            except Exception:
                log.exception("periodic task %s failed", path)
            self.runs[path] += 1
            due[path] = self._clock() + seconds
        return max(0.0, min(due.values()) - self._clock()) if due else 1.0

    def _loop(self) -> None:
        due: dict[str, float] = {}
        while not self._stop.is_set():
            wait = self.run_due(due)
            close_old_connections()  # this thread's own connection: do not keep a broken or stale one
            release_free_heap()
            self._stop.wait(wait)


def start_embedded_beat() -> EmbeddedBeat | None:
    """Start this role's periodic tasks in-process unless Celery runs them (``GRID_PERIODIC``)."""
    if getattr(settings, "GRID_PERIODIC", "embedded") != "embedded":
        return None
    return EmbeddedBeat(periodic_tasks()).start()
