""" "Why is this task waiting?": its unmet inputs, who owes them, and its retry lineage (facilitator_sdk.taskgraph)."""

from __future__ import annotations

import datetime as dt

import grpc
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions

from facilitator_sdk.taskgraph import counts, why_waiting

OPTIONS = TaskOptions(max_duration=dt.timedelta(minutes=1), priority=1, max_retries=1, partition_id="cpu.small")


def test_a_waiting_task_says_what_it_waits_on_and_who_owes_it(channel: grpc.Channel) -> None:
    session_id = ArmoniKSessions(channel).create_session(OPTIONS)
    results, tasks = ArmoniKResults(channel), ArmoniKTasks(channel)
    payload = results.create_results({"payload": b"p"}, session_id)["payload"].result_id
    made = results.create_results_metadata(["upload-me", "middle", "final"], session_id)
    upload, middle, final = (made[n].result_id for n in ("upload-me", "middle", "final"))
    (upstream,) = tasks.submit_tasks(
        session_id, [TaskDefinition(payload_id=payload, data_dependencies=[upload], expected_output_ids=[middle])]
    )
    (downstream,) = tasks.submit_tasks(
        session_id, [TaskDefinition(payload_id=payload, data_dependencies=[middle], expected_output_ids=[final])]
    )

    report = why_waiting(channel, downstream.id)
    assert report.status == "pending" and [i.result_id for i in report.unmet] == [middle]
    (owed,) = report.unmet
    assert (owed.name, owed.status, owed.owner_task_id, owed.owner_status) == (
        "middle",
        "created",
        upstream.id,
        "pending",
    )
    first = why_waiting(channel, upstream.id)
    assert [(i.name, i.owner_task_id) for i in first.unmet] == [("upload-me", "")]
    assert "owed by nobody: upload it" in "\n".join(first.lines())
    assert counts(channel, session_id) == {"pending": 2}

    results.upload_result_data(upload, session_id, b"here")
    now = why_waiting(channel, upstream.id)
    assert now.status == "submitted" and now.unmet == []
    assert "waits for an executor of its partition" in "\n".join(now.lines())
    assert counts(channel, session_id) == {"submitted": 1, "pending": 1}
