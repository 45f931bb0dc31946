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


def test_rows_inserted_together_read_back_through_the_orm_and_a_conflict_can_be_skipped() -> None:
    jobs = [Job(client_hotkey="c" * 64, spec={"n": n}, client_signature="s") for n in range(3)]
    sql.insert_many(jobs)  # defaults and auto_now filled as the ORM fills them
    stored = {job.pk: job for job in Job.objects.all()}
    assert set(stored) == {job.pk for job in jobs}
    assert [stored[job.pk].spec for job in jobs] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(job.status == "sent" and job.created_at is not None for job in stored.values())
    events = [JobEvent(job_id=jobs[0].pk, status="sent", attempt=1, payload={"at": 1}, at=1.0)]
    sql.insert_many(events)
    again = [
        JobEvent(job_id=jobs[0].pk, status="sent", attempt=1, payload={"at": 2}, at=2.0),  # same job, attempt, status
        JobEvent(job_id=jobs[1].pk, status="sent", attempt=1, payload={"at": 3}, at=3.0),
    ]
    sql.insert_many(again, ignore_conflicts=True)
    assert sorted(JobEvent.objects.values_list("at", flat=True)) == [1.0, 3.0]  # the duplicate skipped, the rest kept
    sql.insert_many([])  # nothing to write: no statement
