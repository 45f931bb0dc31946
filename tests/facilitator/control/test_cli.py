"""``grid session …`` and ``grid task …`` against a real control plane, signed with a key file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions

from grid.cli import main
from grid.local import LocalGrid
from protocol.keys import Keypair
from tests.facilitator.control.conftest import key_file

OPTIONS = TaskOptions(max_duration=dt.timedelta(minutes=1), priority=1, max_retries=1, partition_id="cpu.small")


@pytest.fixture
def grid_cli(control_grid: LocalGrid, keypair: Keypair, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Runs ``grid ARGS… --control … --key …``: its exit code and what it printed."""
    key = key_file(tmp_path, keypair)

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--control", str(control_grid.control_endpoint), "--key", str(key)])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def graph(channel: grpc.Channel) -> tuple[str, str, str]:
    """A session with a task waiting on an upload: (session, task, the result it waits on)."""
    session_id = ArmoniKSessions(channel).create_session(OPTIONS)
    results = ArmoniKResults(channel)
    payload = results.create_results({"payload": b"p"}, session_id)["payload"].result_id
    made = results.create_results_metadata(["input", "output"], session_id)
    (task,) = ArmoniKTasks(channel).submit_tasks(
        session_id,
        [
            TaskDefinition(
                payload_id=payload,
                data_dependencies=[made["input"].result_id],
                expected_output_ids=[made["output"].result_id],
            )
        ],
    )
    return session_id, task.id, made["input"].result_id


def test_sessions_are_listed_shown_and_moved(grid_cli, graph) -> None:
    session_id, _, _ = graph
    code, out, _ = grid_cli("session", "list")
    assert code == 0 and session_id in out and "running" in out
    code, out, _ = grid_cli("session", "show", session_id, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["status"] == "running" and shown["tasks"] == {"pending": 1}
    assert grid_cli("session", "pause", session_id)[1].strip() == f"session {session_id}: paused"
    assert grid_cli("session", "cancel", session_id)[1].strip() == f"session {session_id}: cancelled"
    code, _, err = grid_cli("session", "resume", session_id)
    assert code == 1 and "failed_precondition" in err and "cannot be resumed" in err


def test_tasks_are_listed_shown_counted_and_explained(grid_cli, graph) -> None:
    session_id, task_id, waiting_on = graph
    code, out, _ = grid_cli("task", "list", "--session", session_id, "--status", "pending")
    assert code == 0 and task_id in out
    assert grid_cli("task", "list", "--session", session_id, "--status", "completed")[1].strip() == "none"
    code, out, _ = grid_cli("task", "show", task_id, "--json")
    assert code == 0 and json.loads(out)["data_dependencies"] == [waiting_on]
    code, out, _ = grid_cli("task", "why", task_id)
    assert code == 0 and f"waits on input [{waiting_on}], created: owed by nobody: upload it" in out
    assert grid_cli("task", "counts", "--session", session_id)[1].strip() == "pending 1"


def test_unknown_ids_and_statuses_get_their_exit_codes(grid_cli) -> None:
    code, _, err = grid_cli("task", "show", "no-such-task")
    assert code == 4 and "not_found: no task 'no-such-task'" in err
    code, _, err = grid_cli("task", "list", "--session", "s", "--status", "sleeping")
    assert code == 2 and "no task status 'sleeping'" in err
