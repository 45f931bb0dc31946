"""An executor serves job after job on one miner connection (executor/__main__.py ``serve``).

The same in-memory miner connection as test_driver; the runtime is the real process runtime.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from executor.__main__ import max_jobs, serve
from executor.driver import ExecutorConfig
from executor.runtimes.process import ProcessRuntime
from protocol.messages import (
    ExecutionDone,
    ExecutorReady,
    JobCancel,
    JobFailed,
    JobFinished,
    Message,
    VolumesReady,
)
from protocol.spec import new_job_id
from protocol.transport import ConnectionLost

from .test_driver import WAIT_S, Executor, FakeConnection, job, types

ONE_JOB = [ExecutorReady, VolumesReady, ExecutionDone, JobFinished]


class Miner:
    """Hands out jobs as a miner's pool does: the next ``job.reserved`` once the last job's end is
    reported; when it has none left, it goes away."""

    def __init__(self, work_root: Path, specs: list[dict]) -> None:
        self.work_root = work_root
        self.connection = FakeConnection()
        self.jobs = [Executor(work_root) for _ in specs]  # each only makes its job's frames
        self.specs = specs
        self.sent: list[Message] = []
        self.connection.send = self._sent  # type: ignore[method-assign]
        self.connection.send_soon = self.sent.append  # type: ignore[method-assign]
        self.next = 0

    def hand_out(self) -> None:
        if self.next < len(self.jobs):
            frames, spec = self.jobs[self.next], self.specs[self.next]
            self.connection.feed(frames.initial(spec))
            self.next += 1
        else:
            self.connection.feed(ConnectionLost(1006, "gone"))

    async def _sent(self, message: Message) -> None:
        self.sent.append(message)
        if isinstance(message, ExecutorReady):  # as the validator does: job.full once the executor is ready
            frames = next(j for j in self.jobs if j.job_id == message.job_id)
            self.connection.feed(frames.full(self.specs[self.jobs.index(frames)]))
        if isinstance(message, JobFinished | JobFailed):
            self.hand_out()  # at once: before the executor has cleaned up after its job

    async def serve(self, limit: int) -> int:
        self.hand_out()
        config = ExecutorConfig(max_output=64 * 1024, work_root=str(self.work_root))
        return await asyncio.wait_for(serve(self.connection, ProcessRuntime(), config, limit), WAIT_S * 3)  # type: ignore[arg-type]


@pytest.fixture
def work_root(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    return root


SHOW = 'pwd; ls -A . "$GRID_OUTPUT_DIR" "$TMPDIR"; echo x > "$GRID_OUTPUT_DIR/left-behind"'
LEAVE = (
    'echo x > "$TMPDIR/t"; echo x > "$HOME/.rc"; mkdir -p "$HOME/cache/deep"; ln -s "$OUTSIDE" "$GRID_OUTPUT_DIR/link"'
)


def listing(finished: JobFinished) -> list[str]:
    """What SHOW printed: the job's directory, then each listing's header and entries, but the
    executor's capture files of the job's own output (there or not yet, as the job writes)."""
    return [line for line in finished.result.stdout.splitlines() if line and line not in ("stdout", "stderr")]


async def test_jobs_run_one_after_another_on_one_connection_each_finding_its_directories_empty(
    work_root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("not the job's")
    leave = job("sh", "-c", LEAVE, env={"OUTSIDE": str(outside)})
    miner = Miner(work_root, [job("sh", "-c", SHOW), leave, job("sh", "-c", SHOW), job("false")])
    assert await miner.serve(limit=5) == 4
    assert types(miner.sent) == [*ONE_JOB, *ONE_JOB, *ONE_JOB, ExecutorReady, VolumesReady, ExecutionDone, JobFailed]
    first, _, third = (listing(m) for m in miner.sent if isinstance(m, JobFinished))
    # The same directories, kept between jobs, with nothing of the jobs before in them.
    root = first[0]
    empty = [root, ".:", "output", "scratch", "tmp", "volume", f"{root}/output:", f"{root}/tmp:"]
    assert first == empty and third == empty, third
    assert (outside / "keep").read_text() == "not the job's", "a link the job left was followed"
    assert [m.job_id for m in miner.sent if isinstance(m, ExecutorReady)] == [j.job_id for j in miner.jobs]
    assert list(work_root.iterdir()) == []


async def test_a_job_that_opens_its_directory_to_others_leaves_the_next_job_a_fresh_one(work_root: Path) -> None:
    opened = job("sh", "-c", 'pwd; chmod 755 "$GRID_OUTPUT_DIR"')
    miner = Miner(work_root, [opened, job("sh", "-c", SHOW)])
    assert await miner.serve(limit=5) == 2
    first, second = (listing(m) for m in miner.sent if isinstance(m, JobFinished))
    assert first[0] != second[0] and not Path(first[0]).exists()
    assert list(work_root.iterdir()) == []


async def test_the_executor_ends_after_its_limit(work_root: Path) -> None:
    miner = Miner(work_root, [job("true"), job("true"), job("true")])
    assert await miner.serve(limit=2) == 2
    assert types(miner.sent) == [*ONE_JOB, *ONE_JOB]  # the third job is left for a fresh executor


async def test_a_cancelled_job_ends_the_executor(work_root: Path) -> None:
    miner = Miner(work_root, [job("sleep", "30", execution=10.0), job("true")])
    running = asyncio.create_task(miner.serve(limit=5))
    while VolumesReady not in types(miner.sent):
        await asyncio.sleep(0.01)
    miner.connection.feed(JobCancel(job_id=miner.jobs[0].job_id, reason="client cancelled"))
    assert await running == 1
    assert JobFinished not in types(miner.sent) and miner.next == 1


async def test_a_cancel_while_waiting_for_a_job_ends_the_executor(work_root: Path) -> None:
    connection = FakeConnection()
    connection.feed(JobCancel(job_id=new_job_id(), reason="the miner gave up on this executor"))
    config = ExecutorConfig(work_root=str(work_root))
    assert await asyncio.wait_for(serve(connection, ProcessRuntime(), config, 5), WAIT_S) == 0  # type: ignore[arg-type]
    assert connection.all_sent() == []


async def test_a_lost_miner_between_jobs_ends_the_executor(work_root: Path) -> None:
    miner = Miner(work_root, [job("true")])
    assert await miner.serve(limit=5) == 1
    assert types(miner.sent) == ONE_JOB


def test_max_jobs_comes_from_the_environment_and_bad_values_are_refused() -> None:
    assert max_jobs({}) == 100
    assert max_jobs({"GRID_EXECUTOR_MAX_JOBS": "3"}) == 3
    for bad in ("0", "-1", "many", "2.5"):
        with pytest.raises(ValueError, match="GRID_EXECUTOR_MAX_JOBS"):
            max_jobs({"GRID_EXECUTOR_MAX_JOBS": bad})
