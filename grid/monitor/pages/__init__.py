"""The monitor's pages: one module per page, each with its ``routes(feed)``.

- :mod:`~grid.monitor.pages.jobs`: the jobs table (``/``) and its JSON (``/api/jobs``);
- :mod:`~grid.monitor.pages.job`: one job (``/jobs/ID``): its timeline per attempt, logs,
  artifacts to download through the monitor.

A page is an HTML shell (:func:`~grid.monitor.pages.layout.page`) plus its own script under
``static/``, which reads the page's JSON once and then follows ``/events`` (Server-Sent Events):
nothing is reloaded. The task-graph sessions to come get their page the same way: a module here
(say ``graphs.py``, the graph drawn from the tasks' dependencies, coloured by status) whose routes
:data:`PAGES` lists, and an entry in the layout's navigation.
"""

from __future__ import annotations

from grid.monitor.pages import job, jobs

__all__ = ["PAGES"]

PAGES = [jobs, job]
