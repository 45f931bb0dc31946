"""Partitions are the executor classes the grid's miners offer, as the validators tell the facilitator."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from armonik.client import ArmoniKPartitions, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Partition, TaskDefinition, TaskOptions


def test_the_miners_classes_are_the_partitions(channel: grpc.Channel) -> None:
    partitions = ArmoniKPartitions(channel)
    total, listed = partitions.list_partitions()
    assert total == 2 and [p.id for p in listed] == ["cpu.large", "cpu.small"]
    small = partitions.get_partition("cpu.small")
    assert small.pod_max == 2  # the control grid's miner: cpu.small:2:1
    assert small.pod_configuration["cpu"] == "1.0" and small.pod_configuration["memory_mb"] == "2048"
    assert partitions.get_partition("cpu.large").pod_max == 1
    total, listed = partitions.list_partitions(Partition.id == "cpu.large")
    assert (total, [p.id for p in listed]) == (1, ["cpu.large"])


def test_a_partition_no_miner_offers_is_not_found(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        ArmoniKPartitions(channel).get_partition("gpu.80gb")
    assert (
        caught.value.code() == grpc.StatusCode.NOT_FOUND
        and "no miner offers partition 'gpu.80gb'" in caught.value.details()
    )


def test_a_task_for_a_partition_no_miner_offers_fails_at_once(channel: grpc.Channel) -> None:
    options = TaskOptions(max_duration=dt.timedelta(minutes=1), priority=1, max_retries=1, partition_id="gpu.80gb")
    session_id = ArmoniKSessions(channel).create_session(options)  # a session may name any partition
    results = ArmoniKResults(channel)
    payload = results.create_results({"payload": b"p"}, session_id)["payload"].result_id
    output = results.create_results_metadata(["output"], session_id)["output"].result_id
    with pytest.raises(grpc.RpcError) as caught:
        ArmoniKTasks(channel).submit_tasks(
            session_id, [TaskDefinition(payload_id=payload, expected_output_ids=[output])]
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no miner offers partition 'gpu.80gb' now (offered: cpu.large, cpu.small)" in caught.value.details()
    assert ArmoniKTasks(channel).list_tasks()[0] == 0
