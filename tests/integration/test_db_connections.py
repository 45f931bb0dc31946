"""The facilitator's HTTP requests leave no database connection behind.

Under ASGI, Django's own handler runs every request's sync code on a thread of its own, so a
persistent connection was never reused; left open, each lingered until the garbage collector
found it (an idle SQLite connection and its page cache: ~35 open after a thousand GETs, +10 MiB
of RSS). node/http_handler.py runs requests on the process's one sync thread instead, whose one
connection every request reuses.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facilitator_sdk import Client, JobSpec
from grid.local import LocalGrid

pytestmark = pytest.mark.slow

REQUESTS = 500


def open_database_files(pid: int) -> int:
    """How many of ``pid``'s file descriptors are SQLite files (a connection holds one or more)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += ".sqlite3" in os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
    return count


def test_http_requests_leave_no_database_connection_open(grid: LocalGrid, client_key: Path) -> None:
    facilitator = grid.processes["facilitator"].pid
    with Client(grid.facilitator_url, client_key) as client:
        job = client.run(JobSpec(command=["true"]), timeout=60)
        before = open_database_files(facilitator)
        for _ in range(REQUESTS):
            assert client.get_job(job.job_id).status == "completed"
        after = open_database_files(facilitator)
    assert after <= before + 3, f"{after - before} more SQLite files open after {REQUESTS} requests"
