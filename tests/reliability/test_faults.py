"""Promises 1-3 of reliability: whatever single process dies, at whichever stage, the job ends with
a reason, never runs twice in one attempt, never completes without its outputs, and every
restarted process resumes (tests/reliability/faults.py holds the harness).

One grid serves the module; each test holds a probe job at a stage, kills one process there
(SIGKILL: no chance to clean up), restarts it, and checks the end. Two tests swallow what the
validator sends the facilitator, so that statuses are written into a connection nobody reads,
then break it: the statuses only arrive because the validator keeps them until acknowledged, in
memory and, for how a job ended, in its database.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from tests.executor.httpserver import Server, serve
from tests.integration.conftest import find_process
from tests.reliability.faults import STAGES, FaultGrid, Probe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def web() -> Iterator[Server]:
    with serve() as server:
        yield server


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, web: Server) -> Iterator[FaultGrid]:
    grid = FaultGrid(tmp_path_factory.mktemp("faults"), web).start()
    try:
        yield grid
    finally:
        grid.stop()


def attempts_ended(record: dict, status: str) -> list[dict]:
    return [event for event in record["history"] if event["status"] == status]


def test_a_probe_with_no_fault_completes_once_with_its_outputs(grid: FaultGrid) -> None:
    """The harness's own baseline: every stage slow, nothing killed."""
    for stage in STAGES:
        probe = grid.hold(stage)
        record = grid.settle(probe)
        assert (record["status"], record["attempt"], grid.runs(probe)) == ("completed", 1, 1)


@pytest.mark.parametrize("stage", STAGES)
def test_the_facilitator_dying_mid_job_loses_nothing(grid: FaultGrid, stage: str) -> None:
    """The validator keeps driving; once the facilitator is back it learns every status."""
    probe = grid.hold(stage)
    grid.restart("facilitator", after=1.0)
    record = grid.settle(probe)
    assert (record["status"], record["attempt"], grid.runs(probe)) == ("completed", 1, 1)


@pytest.mark.parametrize("stage", STAGES)
def test_the_validator_dying_mid_job_resumes_it_as_a_new_attempt(grid: FaultGrid, stage: str) -> None:
    probe = grid.hold(stage)
    grid.restart("validator")
    record = grid.settle(probe)
    assert (record["status"], record["attempt"]) == ("completed", 2)
    (ended,) = attempts_ended(record, "infra_failed")
    assert (ended["attempt"], ended["failure"]["reason"]) == (1, "validator_restarted")


@pytest.mark.parametrize("stage", STAGES)
def test_the_miner_dying_mid_job_is_retried_on_another(grid: FaultGrid, stage: str) -> None:
    probe = grid.hold(stage)
    grid.restart(grid.miner_of(probe.token), after=0.5)
    record = grid.settle(probe)
    assert (record["status"], record["attempt"]) == ("completed", 2), record
    (ended,) = attempts_ended(record, "infra_failed")
    assert (ended["attempt"], ended["failure"]["reason"]) == (1, "miner_disconnected")
    # The killed executor's job died with it: nothing of attempt 1 survives.
    assert find_process(probe.token) is None


@pytest.mark.parametrize("stage", STAGES)
def test_a_broken_link_to_the_miner_resumes_the_same_attempt(grid: FaultGrid, stage: str) -> None:
    """The validator's connection to the job's miner breaks mid-job; both processes live on.
    The miner holds the job; when the validator is back it announces the job and replays what
    the validator missed, and the same attempt completes, run once. (Without the hold,
    ``GRID_MINER_RESUME_GRACE_S=0``, the attempt ends ``miner_disconnected`` and runs again.)"""
    probe = grid.hold(stage, miner=grid.linked_miner)
    grid.miner_link.cut()
    record = grid.settle(probe)
    assert (record["status"], record["attempt"], grid.runs(probe)) == ("completed", 1, 1), record
    assert attempts_ended(record, "infra_failed") == []


@pytest.mark.parametrize("stage", STAGES)
def test_the_executor_dying_mid_job_is_retried(grid: FaultGrid, stage: str) -> None:
    probe = grid.hold(stage)
    grid.kill(f"executor:{probe.token}")
    record = grid.settle(probe)
    assert (record["status"], record["attempt"]) == ("completed", 2)
    (ended,) = attempts_ended(record, "infra_failed")
    assert (ended["attempt"], ended["failure"]["reason"]) == (1, "executor_disconnected")


def test_the_job_itself_dying_fails_it_with_its_exit(grid: FaultGrid) -> None:
    probe = grid.hold("execution")
    grid.kill(f"job:{probe.token}")
    record = grid.settle(probe)
    assert (record["status"], record["attempt"], grid.runs(probe)) == ("failed", 1, 1)
    assert record["failure"]["reason"] == "nonzero_exit"
    assert record["failure"]["exit_code"] in (-9, 137)


def swallow_the_end(grid: FaultGrid, probe: Probe) -> None:
    """Let the probe end while everything the validator sends the facilitator is swallowed."""
    # The probe runs: first let the facilitator hear so (statuses travel in batches, later under load).
    heard = time.monotonic() + 15
    while grid.fetch(probe.job_id)["status"] != "volumes_ready" and time.monotonic() < heard:
        time.sleep(0.05)
    grid.link.swallow()
    deadline = time.monotonic() + 30
    while find_process(probe.token) is not None:
        assert time.monotonic() < deadline, "the probe never ended"
        time.sleep(0.1)
    time.sleep(2.0)  # outputs uploaded, execution_done and completed written into the link
    assert grid.link.swallowed > 0
    assert grid.fetch(probe.job_id)["status"] == "volumes_ready"  # the facilitator heard nothing


def test_statuses_lost_on_a_connection_that_breaks_are_sent_again(grid: FaultGrid) -> None:
    """The job's last statuses are written to a connection that then breaks, unread. The
    validator sends them again on reconnecting: the facilitator never acknowledged them (switch
    the acknowledgements off and this job stays at volumes_ready)."""
    probe = grid.hold("execution")
    swallow_the_end(grid, probe)
    grid.link.cut()
    record = grid.settle(probe)
    assert (record["status"], record["attempt"], grid.runs(probe)) == ("completed", 1, 1)


def test_how_a_job_ended_survives_the_validator_dying_before_the_facilitator_heard(grid: FaultGrid) -> None:
    """As above, but the validator dies too before reconnecting. Restarted, it finds the job
    ended in its database and never acknowledged, and sends how it ended again (switch that off
    and the facilitator never learns: the job stays at volumes_ready for ever)."""
    probe = grid.hold("execution")
    swallow_the_end(grid, probe)
    grid.grid.stop_role("validator", sig=signal.SIGKILL)
    grid.link.cut()
    grid.grid.start_role("validator")
    record = grid.settle(probe)
    assert (record["status"], record["attempt"], grid.runs(probe)) == ("completed", 1, 1)


def test_a_job_lost_on_its_way_to_the_validator_is_delivered_again(grid: FaultGrid) -> None:
    """The job's ``job.new`` is written to a connection that breaks before the validator reads
    it. Never acknowledged (``job.received``), it is delivered again once the validator is back
    (mark jobs delivered when sent instead of when acknowledged, and this job stays ``sent``)."""
    grid.link.swallow(to_validator=True)
    with grid.client() as client:
        job = client.create_job(grid.spec("probe-lost-on-the-way", "execution"))
    time.sleep(1.5)  # sent, and redelivered now and then, all swallowed
    assert grid.link.swallowed > 0
    assert grid.fetch(job.job_id)["status"] == "sent"
    grid.link.cut()
    probe = Probe("probe-lost-on-the-way", job.job_id, "execution")
    record = grid.settle(probe)
    assert (record["status"], record["attempt"], grid.runs(probe)) == ("completed", 1, 1)


def test_jobs_keep_running_after_every_fault(grid: FaultGrid) -> None:
    """After the module's kills and restarts, the grid still runs jobs, each once."""
    probes = [grid.hold(stage) for stage in STAGES]
    for probe in probes:
        record = grid.settle(probe)
        assert (record["status"], record["attempt"], grid.runs(probe)) == ("completed", 1, 1)
    # Nothing the killed executors left behind stays: the fork servers sweep it.
    deadline = time.monotonic() + 10
    while grid.orphaned_job_dirs():
        assert time.monotonic() < deadline, f"job directories left behind: {grid.orphaned_job_dirs()}"
        time.sleep(0.2)
