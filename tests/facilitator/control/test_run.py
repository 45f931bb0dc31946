"""Tasks run: the stock client submits, a worker written with the stock ``armonik.worker`` runs them.

A real local grid with dispatch on: queued tasks become batch jobs the facilitator signs, the chain
takes them to the miner's executors, which run them through the worker (executor/taskgraph) and
report back through relayed calls.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import ResultStatus, Task, TaskDefinition, TaskOptions, TaskStatus

from facilitator_sdk.control import signed_channel
from facilitator_sdk.taskgraph import why_waiting
from grid.local import LocalGrid
from protocol.keys import Keypair
from tests.facilitator.control.conftest import control_proxy, key_file, running_grid

WORKER = Path(__file__).resolve().parents[2] / "executor" / "taskgraph" / "worker_program.py"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    with running_grid(tmp_path_factory.mktemp("run-grid"), executor_classes="cpu.small:2:2") as grid:
        yield grid


@pytest.fixture
def channel(run_grid: LocalGrid) -> Iterator[grpc.Channel]:
    assert run_grid.control_endpoint is not None
    with signed_channel(run_grid.control_endpoint, Keypair.generate()) as channel:
        yield channel


def options(max_retries: int = 1, **more: str) -> TaskOptions:
    return TaskOptions(
        max_duration=dt.timedelta(seconds=60),
        priority=1,
        max_retries=max_retries,
        partition_id="cpu.small",
        options={"command": json.dumps([sys.executable, str(WORKER)]), **more},
    )


@pytest.fixture
def session_id(channel: grpc.Channel) -> str:
    return ArmoniKSessions(channel).create_session(options())


def submit(
    channel: grpc.Channel, session_id: str, payload: bytes, *inputs: str, task_options: TaskOptions | None = None
) -> tuple[str, str]:
    """One task on ``payload`` reading ``inputs``; its id and its output's."""
    results = ArmoniKResults(channel)
    payload_id = results.create_results({"payload": payload}, session_id)["payload"].result_id
    output = results.create_results_metadata(["output"], session_id)["output"].result_id
    definition = TaskDefinition(
        payload_id=payload_id, data_dependencies=list(inputs), expected_output_ids=[output], options=task_options
    )
    (task,) = ArmoniKTasks(channel).submit_tasks(session_id, [definition])
    return task.id, output


def ended(channel: grpc.Channel, task_id: str, timeout: float = 60.0) -> Task:
    tasks = ArmoniKTasks(channel)
    deadline = time.monotonic() + timeout
    while True:
        task = tasks.get_task(task_id)
        if task.status in (
            TaskStatus.COMPLETED,
            TaskStatus.ERROR,
            TaskStatus.TIMEOUT,
            TaskStatus.CANCELLED,
            TaskStatus.RETRIED,
        ):
            return task
        assert time.monotonic() < deadline, f"task {task_id} still {task.status}"
        time.sleep(0.1)


def test_a_task_runs_through_the_chain_and_its_output_is_there_to_download(
    channel: grpc.Channel, session_id: str
) -> None:
    task_id, output = submit(channel, session_id, b"upper:hello")
    ArmoniKEvents(channel).wait_for_result_availability([output], session_id)
    assert ArmoniKResults(channel).download_result_data(output, session_id) == b"HELLO"
    task = ended(channel, task_id)
    assert task.status == TaskStatus.COMPLETED and task.output.success
    assert (
        task.created_at
        <= task.submitted_at
        <= task.received_at
        <= task.started_at
        <= task.processed_at
        <= task.ended_at
    )
    assert task.pod_hostname  # the miner that ran it


def test_a_task_waits_for_the_task_it_depends_on(channel: grpc.Channel, session_id: str) -> None:
    first, middle = submit(channel, session_id, b"upper:one")
    second, final = submit(channel, session_id, b"upper:two-", middle)
    ArmoniKEvents(channel).wait_for_result_availability([final], session_id)
    assert ArmoniKResults(channel).download_result_data(final, session_id) == b"TWO-ONE"
    assert ended(channel, first).ended_at <= ended(channel, second).started_at


def test_a_child_task_writes_the_output_its_parent_delegated(channel: grpc.Channel, session_id: str) -> None:
    parent, output = submit(channel, session_id, b"delegate")
    ArmoniKEvents(channel).wait_for_result_availability([output], session_id)
    assert ArmoniKResults(channel).download_result_data(output, session_id) == b"CHILD"
    assert ended(channel, parent).status == TaskStatus.COMPLETED
    _, children = ArmoniKTasks(channel).list_tasks(Task.session_id == session_id)
    (child,) = [t for t in children if t.id != parent]
    assert child.created_by == parent and child.parent_task_ids == [parent]
    assert ArmoniKResults(channel).get_result(output).owner_task_id == child.id


def test_an_error_output_fails_the_task_and_aborts_what_waits_on_it(channel: grpc.Channel, session_id: str) -> None:
    failing, output = submit(channel, session_id, b"fail:the input is odd")
    waiting, final = submit(channel, session_id, b"upper:never", output)
    with pytest.raises(RuntimeError, match="aborted"):
        ArmoniKEvents(channel).wait_for_result_availability([final], session_id)
    task = ended(channel, failing)
    assert task.status == TaskStatus.ERROR and task.output.error == "the input is odd" and task.retry_of_ids == []
    downstream = ended(channel, waiting)
    assert downstream.status == TaskStatus.ERROR and f"input {output} was aborted" in downstream.status_message
    assert ArmoniKResults(channel).get_result(output).status == ResultStatus.ABORTED


def test_an_output_written_by_a_task_that_then_fails_is_aborted_not_completed(
    channel: grpc.Channel, session_id: str
) -> None:
    """As in ArmoniK, a task's results complete with the task: one that fails leaves none of its data."""
    failing, output = submit(channel, session_id, b"wrote-then-fail:changed its mind")
    assert ended(channel, failing).status == TaskStatus.ERROR
    assert ArmoniKResults(channel).get_result(output).status == ResultStatus.ABORTED


def test_an_output_too_big_to_travel_inline_goes_through_the_store(channel: grpc.Channel, session_id: str) -> None:
    _, output = submit(channel, session_id, b"big:262144")
    _, final = submit(channel, session_id, b"upper:", output)  # and comes back as the next task's input
    ArmoniKEvents(channel).wait_for_result_availability([final], session_id)
    assert ArmoniKResults(channel).download_result_data(output, session_id) == bytes(range(256)) * 1024
    assert ArmoniKResults(channel).download_result_data(final, session_id) == bytes(range(256)) * 1024


def test_a_worker_that_dies_is_retried_as_a_new_task_up_to_max_retries(channel: grpc.Channel, session_id: str) -> None:
    first, output = submit(channel, session_id, b"crash", task_options=options(max_retries=1))
    retried = ended(channel, first)
    assert retried.status == TaskStatus.RETRIED and "retried as task" in retried.status_message
    second = retried.status_message.rsplit(" ", 1)[-1]
    last = ended(channel, second)
    assert last.status == TaskStatus.ERROR and last.retry_of_ids == [first] and last.initial_task_id == first
    assert "no retries left" in last.status_message
    lineage = why_waiting(channel, second)
    assert lineage.retry_of_ids == [first] and f"a retry of {first}" in "\n".join(lineage.lines())
    assert ArmoniKResults(channel).get_result(output).status == ResultStatus.ABORTED


EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "armonik"


def test_the_transform_example_worker(channel: grpc.Channel) -> None:
    transform = options(command=json.dumps([sys.executable, str(EXAMPLES / "transform_worker.py")]))
    session_id = ArmoniKSessions(channel).create_session(transform)
    _, first = submit(channel, session_id, b"world hello")
    _, second = submit(channel, session_id, b"and", first)
    ArmoniKEvents(channel).wait_for_result_availability([second], session_id)
    assert ArmoniKResults(channel).download_result_data(second, session_id) == b"ANDHELLO WORLD"


def test_the_htcmock_example_runs_unmodified_through_the_signing_proxy(run_grid: LocalGrid, tmp_path: Path) -> None:
    """A plain ArmoniK application (grpc.insecure_channel, the stock client) whose workers submit sub-tasks."""
    assert run_grid.control_endpoint is not None
    with control_proxy(run_grid.control_endpoint, key_file(tmp_path, Keypair.generate())) as endpoint:
        ran = subprocess.run(
            [sys.executable, str(EXAMPLES / "htcmock_client.py"), endpoint, "--levels", "3", "--width", "5"],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = json.loads(ran.stdout)
    assert out["tasks"] == out["expected"] == 16  # every task of the graph ran and was counted


def test_a_task_without_a_worker_program_fails_at_once(channel: grpc.Channel) -> None:
    bare = TaskOptions(max_duration=dt.timedelta(seconds=60), priority=1, max_retries=1, partition_id="cpu.small")
    session_id = ArmoniKSessions(channel).create_session(bare)
    task_id, _ = submit(channel, session_id, b"upper:x")
    task = ended(channel, task_id, timeout=10)
    assert task.status == TaskStatus.ERROR and 'options["command"]' in task.status_message


def _process_with(marker: str, timeout: float = 30.0) -> tuple[int, int]:
    """(pid, parent pid) of the process whose command line holds ``marker``, once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if marker in cmdline:
                return int(entry.name), ppid
        time.sleep(0.05)
    raise AssertionError(f"no process with {marker!r} in its command line")


def test_a_task_whose_executor_is_killed_is_retried_with_its_lineage_and_completes(channel: grpc.Channel) -> None:
    import os
    import signal
    import uuid

    marker = f"--run-{uuid.uuid4().hex}"  # the worker ignores its arguments: this one names it in /proc
    tagged = options(max_retries=2, command=json.dumps([sys.executable, str(WORKER), marker]))
    session_id = ArmoniKSessions(channel).create_session(tagged)
    first, output = submit(channel, session_id, b"sleep:4")
    _, executor = _process_with(marker)  # the worker runs the task: its parent is the executor
    os.kill(executor, signal.SIGKILL)
    ArmoniKEvents(channel).wait_for_result_availability([output], session_id)
    assert ArmoniKResults(channel).download_result_data(output, session_id) == b"SLEPT"
    killed = ended(channel, first)
    assert killed.status == TaskStatus.RETRIED and "ended before the task did" in killed.status_message
    retry = ended(channel, killed.status_message.rsplit(" ", 1)[-1])
    assert retry.status == TaskStatus.COMPLETED and retry.retry_of_ids == [first] and retry.initial_task_id == first
    assert ArmoniKResults(channel).get_result(output).owner_task_id == retry.id
