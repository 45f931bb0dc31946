"""A running task graph survives its miner, its validator and its facilitator killed and restarted.

Each test has a grid of its own (roles are killed), runs a chain of tasks (each reads the one before:
a lost, doubled or reordered task changes the final output), kills one role mid-graph with SIGKILL,
starts it again, and checks that the graph completes and that every task ended completed or
retried, with its lineage.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import Task, TaskDefinition, TaskOptions, TaskStatus

from facilitator_sdk.control import signed_channel
from grid.local import LocalGrid
from protocol.keys import Keypair
from tests.facilitator.control.conftest import running_grid

WORKER = Path(__file__).resolve().parents[2] / "executor" / "taskgraph" / "worker_program.py"
LENGTH = 6
pytestmark = pytest.mark.slow


@pytest.fixture
def fault_grid(tmp_path: Path) -> Iterator[LocalGrid]:
    with running_grid(tmp_path / "grid", executor_classes="cpu.small:2:2") as grid:
        yield grid


def _chain(channel: grpc.Channel) -> tuple[str, str]:
    """LENGTH tasks, each upper-casing its word after the previous one's output: (session, final output)."""
    options = TaskOptions(
        max_duration=dt.timedelta(seconds=60),
        priority=1,
        max_retries=3,
        partition_id="cpu.small",
        options={"command": json.dumps([sys.executable, str(WORKER)])},
    )
    session_id = ArmoniKSessions(channel).create_session(options)
    results, tasks = ArmoniKResults(channel), ArmoniKTasks(channel)
    previous: list[str] = []
    for index in range(LENGTH):
        payload = results.create_results({"p": b"sleep:0.4" if index else b"upper:w0"}, session_id)["p"].result_id
        output = results.create_results_metadata([f"out{index}"], session_id)[f"out{index}"].result_id
        tasks.submit_tasks(
            session_id, [TaskDefinition(payload_id=payload, data_dependencies=previous, expected_output_ids=[output])]
        )
        previous = [output]
    return session_id, previous[0]


def _kill_mid_graph_then_check(grid: LocalGrid, role: str) -> None:
    assert grid.control_endpoint is not None
    keypair = Keypair.generate()
    with signed_channel(grid.control_endpoint, keypair) as channel:
        session_id, final = _chain(channel)
        tasks = ArmoniKTasks(channel)
        deadline = time.monotonic() + 30
        while tasks.count_tasks_by_status(Task.session_id == session_id).get(TaskStatus.COMPLETED, 0) < 2:
            assert time.monotonic() < deadline, "the graph never got going"
            time.sleep(0.05)
    grid.stop_role(role, sig=signal.SIGKILL)
    time.sleep(0.5)
    grid.start_role(role)
    with signed_channel(grid.control_endpoint, keypair) as channel:
        _wait_until_ready(channel)
        ArmoniKEvents(channel).wait_for_result_availability([final], session_id)
        data = ArmoniKResults(channel).download_result_data(final, session_id)
        assert data == b"SLEPT" * (LENGTH - 1) + b"W0"  # every link of the chain ran, in order
        _, listed = ArmoniKTasks(channel).list_tasks(Task.session_id == session_id)
    by_id = {t.id: t for t in listed}
    assert {t.status for t in listed} <= {TaskStatus.COMPLETED, TaskStatus.RETRIED}
    for task in listed:
        if task.status == TaskStatus.RETRIED:  # its retry names it
            assert any(task.id in t.retry_of_ids for t in listed), task.id
        for earlier in task.retry_of_ids:
            assert by_id[earlier].status == TaskStatus.RETRIED
    assert sum(t.status == TaskStatus.COMPLETED for t in listed) == LENGTH  # none run twice to completion


def _wait_until_ready(channel: grpc.Channel, timeout: float = 60.0) -> None:
    from protocol.armonik_api.protos import versions_pb2, versions_pb2_grpc

    deadline = time.monotonic() + timeout
    while True:
        try:
            versions_pb2_grpc.VersionsStub(channel).ListVersions(versions_pb2.ListVersionsRequest(), timeout=2)
            return
        except grpc.RpcError:
            assert time.monotonic() < deadline, "the control plane did not come back"
            time.sleep(0.2)


@pytest.mark.parametrize("role", ["miner", "validator", "facilitator"])
def test_a_graph_survives_a_role_killed_and_restarted(fault_grid: LocalGrid, role: str) -> None:
    _kill_mid_graph_then_check(fault_grid, role)
