"""Applications: what the caller's tasks name in their options (there is no stock client for it: our stubs)."""

from __future__ import annotations

import datetime as dt

import grpc
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions

from protocol.armonik_api.protos import applications_pb2, applications_pb2_grpc


def _options(name: str, version: str) -> TaskOptions:
    return TaskOptions(
        max_duration=dt.timedelta(minutes=1),
        priority=1,
        max_retries=1,
        partition_id="cpu.small",
        application_name=name,
        application_version=version,
    )


def test_the_applications_are_those_the_callers_tasks_name(channel: grpc.Channel) -> None:
    session_id = ArmoniKSessions(channel).create_session(_options("", ""))
    results, tasks = ArmoniKResults(channel), ArmoniKTasks(channel)
    payload = results.create_results({"p": b"p"}, session_id)["p"].result_id
    outputs = results.create_results_metadata(["a", "b", "c", "d"], session_id)
    for (name, version), output in zip([("htc", "1"), ("htc", "2"), ("htc", "1"), ("", "")], "abcd", strict=True):
        definition = TaskDefinition(
            payload_id=payload, expected_output_ids=[outputs[output].result_id], options=_options(name, version)
        )
        tasks.submit_tasks(session_id, [definition])
    stub = applications_pb2_grpc.ApplicationsStub(channel)
    Sort = applications_pb2.ListApplicationsRequest.Sort
    version = applications_pb2.ApplicationField(application_field=applications_pb2.ApplicationRawField(field=2))
    reply = stub.ListApplications(
        applications_pb2.ListApplicationsRequest(page_size=10, sort=Sort(fields=[version], direction=2))
    )
    assert reply.total == 2 and [(a.name, a.version) for a in reply.applications] == [("htc", "2"), ("htc", "1")]
    first = stub.ListApplications(applications_pb2.ListApplicationsRequest(page=1, page_size=1))
    assert [(a.name, a.version) for a in first.applications] == [("htc", "2")] and first.total == 2
