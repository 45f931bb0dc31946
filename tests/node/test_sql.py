"""node/sql.py: values stored through plain SQL read back through the ORM as the ORM stores them."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from facilitator.models import Job, JobEvent
from node import sql

pytestmark = pytest.mark.django_db


def test_a_row_written_in_plain_sql_reads_back_through_the_orm_unchanged() -> None:
    job = Job.objects.create(client_hotkey="c" * 64, spec={"command": ["true"]}, client_signature="s")
    payload = {"status": "accepted", "detail": {"nested": [1, "two", None]}}
    sql.execute_many(
        f"INSERT INTO {sql.table(JobEvent)} (job_id, status, attempt, payload, at) VALUES (%s, %s, %s, %s, %s)",
        [(sql.prep(Job, "id", job.pk), "accepted", 2, sql.prep(JobEvent, "payload", payload), 12.5)],
    )
    event = JobEvent.objects.get(job=job)
    assert (event.status, event.attempt, event.payload, event.at) == ("accepted", 2, payload, 12.5)

    later = timezone.now()
    changed = sql.execute(
        f"UPDATE {sql.table(Job)} SET status = %s, updated_at = %s WHERE id = %s",
        ["accepted", sql.prep(Job, "updated_at", later), sql.prep(Job, "id", job.pk)],
    )
    assert changed == 1
    job.refresh_from_db()
    assert (job.status, job.updated_at) == ("accepted", later)
    [(pk, status)] = sql.fetch(
        f"SELECT id, status FROM {sql.table(Job)} WHERE id IN ({sql.marks(1)})", [sql.prep(Job, "id", job.pk)]
    )
    assert (uuid.UUID(str(pk)), status) == (job.pk, "accepted")


def test_nothing_to_write_runs_no_statement() -> None:
    sql.execute_many("this is not SQL", [])  # would raise if it reached the database
