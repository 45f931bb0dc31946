"""The executor as ArmoniK's polling agent, with a worker written with the stock ``armonik.worker``.

The worker runs in the real process runtime; the upstream is a folder standing in for the control
plane (``FolderUpstream``: results as files), the part that the chain provides in a grid.
"""

from __future__ import annotations

import hashlib
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from executor.runtimes.base import JobDirs
from executor.runtimes.process import ProcessRuntime
from executor.taskgraph.agent import StoredData, TaskRun, Upstream, UpstreamRefused
from executor.taskgraph.polling_agent import PollingAgent
from protocol.armonik_api.protos import objects_pb2
from protocol.spec import JobSpec

WORKER = Path(__file__).with_name("worker_program.py")
SESSION = "session-1"


class FolderUpstream(Upstream):
    """Results as files in a folder: what the control plane keeps, without the chain in between."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.created: list[tuple[str, str, str]] = []  # (task, name, result id)

    def put(self, data: bytes) -> str:
        result_id = str(uuid.uuid4())
        (self.folder / result_id).write_bytes(data)
        return result_id

    async def fetch(self, run: TaskRun, result_id: str, path: Path) -> None:
        source = self.folder / result_id
        if not source.is_file():
            raise UpstreamRefused(grpc.StatusCode.NOT_FOUND, f"no data for result {result_id}")
        path.write_bytes(source.read_bytes())

    async def store(self, run: TaskRun, result_id: str, path: Path) -> StoredData:
        data = path.read_bytes()
        (self.folder / result_id).write_bytes(data)
        return StoredData(result_id, hashlib.sha256(data).hexdigest(), len(data))

    async def create_results(self, run: TaskRun, names: list[str]) -> list[str]:
        ids = [str(uuid.uuid4()) for _ in names]
        self.created += [(run.task_id, n, r) for n, r in zip(names, ids, strict=True)]
        return ids


@pytest.fixture
def upstream(tmp_path: Path) -> FolderUpstream:
    (tmp_path / "store").mkdir()
    return FolderUpstream(tmp_path / "store")


@pytest.fixture
async def agent(tmp_path: Path, upstream: FolderUpstream) -> AsyncIterator[PollingAgent]:
    # gRPC's threads reserve address space: a worker needs more than the 512 MB a job gets by default
    spec = JobSpec(command=[sys.executable, str(WORKER)], timing={"execution": 600}, limits={"memory_mb": 4096})
    polling = PollingAgent(ProcessRuntime(), JobDirs.create(tmp_path / "job"), spec, upstream)
    try:
        yield polling
    finally:
        await polling.stop()


def task(upstream: FolderUpstream, payload: bytes, *inputs: bytes, max_duration_s: int = 30) -> TaskRun:
    options = objects_pb2.TaskOptions(partition_id="cpu.small")
    options.max_duration.FromSeconds(max_duration_s)
    return TaskRun(
        session_id=SESSION,
        task_id=str(uuid.uuid4()),
        payload_id=upstream.put(payload),
        data_dependencies=tuple(upstream.put(i) for i in inputs),
        expected_output_ids=(str(uuid.uuid4()),),
        options=options.SerializeToString(),
    )


def output(upstream: FolderUpstream, run: TaskRun) -> bytes:
    return (upstream.folder / run.expected_output_ids[0]).read_bytes()


async def test_tasks_run_one_after_another_in_one_worker_with_their_inputs_and_outputs(
    agent: PollingAgent, upstream: FolderUpstream
) -> None:
    first = task(upstream, b"upper:abc", b"-in1", b"-in2")
    done = await agent.run(first)
    assert done.completed, done.message
    assert output(upstream, first) == b"ABC-in1-in2"
    stored = done.stored[first.expected_output_ids[0]]
    assert (stored.sha256, stored.size) == (hashlib.sha256(b"ABC-in1-in2").hexdigest(), 11)

    pids = []
    for _ in range(3):
        run = task(upstream, b"pid")
        assert (await agent.run(run)).completed
        pids.append(output(upstream, run))
    assert len(set(pids)) == 1  # the worker is kept for task after task
    assert list(agent.data_folder.iterdir()) == []  # emptied between tasks


async def test_an_error_output_is_the_tasks_error_and_the_worker_stays(
    agent: PollingAgent, upstream: FolderUpstream
) -> None:
    failed = await agent.run(task(upstream, b"fail:the input is odd"))
    assert (failed.status, failed.message) == ("error", "the input is odd")
    raised = await agent.run(task(upstream, b"raise:boom"))
    assert raised.status == "error" and "the worker failed the task" in raised.message
    silent = await agent.run(task(upstream, b"nothing"))
    assert silent.status == "error" and "without writing its expected output" in silent.message
    assert (await agent.run(task(upstream, b"upper:after"))).completed


async def test_a_worker_that_dies_is_a_grid_fault_and_the_next_task_gets_a_new_worker(
    agent: PollingAgent, upstream: FolderUpstream
) -> None:
    before = task(upstream, b"pid")
    assert (await agent.run(before)).completed
    crashed = await agent.run(task(upstream, b"crash"))
    assert crashed.status == "infra" and "stopped answering" in crashed.message
    after = task(upstream, b"pid")
    assert (await agent.run(after)).completed
    assert output(upstream, after) != output(upstream, before)


async def test_a_task_past_its_max_duration_times_out(agent: PollingAgent, upstream: FolderUpstream) -> None:
    slow = await agent.run(task(upstream, b"sleep:30", max_duration_s=1))
    assert slow.status == "timeout" and "max_duration of 1 s" in slow.message
    assert (await agent.run(task(upstream, b"upper:next"))).completed


async def test_a_child_takes_over_its_parents_output_and_is_held_until_the_parent_succeeds(
    agent: PollingAgent, upstream: FolderUpstream
) -> None:
    parent = task(upstream, b"delegate")
    done = await agent.run(parent)
    assert done.completed, done.message
    (child,) = done.children
    assert child.expected_output_ids == parent.expected_output_ids  # delegated: the parent need not write it
    (payload,) = done.created
    assert child.payload_id == payload and (upstream.folder / payload).read_bytes() == b"upper:child"
    assert done.stored[payload].size == len(b"upper:child")


async def test_a_worker_may_write_only_its_own_results(agent: PollingAgent, upstream: FolderUpstream) -> None:
    stray = await agent.run(task(upstream, b"stray"))
    assert stray.status == "error" and "the agent refused it: PERMISSION_DENIED: result someone-elses" in stray.message
    assert not (upstream.folder / "someone-elses").exists()


async def test_missing_inputs_are_a_grid_fault_before_the_worker_sees_the_task(
    agent: PollingAgent, upstream: FolderUpstream
) -> None:
    run = task(upstream, b"upper:x")
    (upstream.folder / run.payload_id).unlink()
    lost = await agent.run(run)
    assert lost.status == "infra" and "inputs could not be fetched" in lost.message


async def test_the_agent_refuses_a_call_without_the_running_tasks_token(agent: PollingAgent) -> None:
    from protocol.armonik_api.protos import agent_pb2, agent_pb2_grpc

    await agent.start()
    async with grpc.aio.insecure_channel(f"unix:{agent.agent_socket}") as channel:
        stub = agent_pb2_grpc.AgentStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateResultsMetaData(
                agent_pb2.CreateResultsMetaDataRequest(
                    session_id=SESSION,
                    communication_token="guessed",
                    results=[agent_pb2.CreateResultsMetaDataRequest.ResultCreate(name="x")],
                )
            )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
