"""The Celery app of every role: ``celery -A grid.celery worker --beat`` with ``GRID_PERIODIC=celery``.

The broker is ``GRID_REDIS_URL``; the beat schedule is the role's ``GRID_PERIODIC_TASKS``
(see :mod:`node.periodic`), so Celery and the embedded default run exactly the same tasks.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "grid.settings.validator")

app = Celery("grid")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _schedule(sender: Celery, **_: object) -> None:
    from node.periodic import periodic_tasks

    for path, seconds in periodic_tasks():
        sender.add_periodic_task(seconds, sender.signature(path), name=path)
