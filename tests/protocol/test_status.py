"""The one rule for a job's state (protocol/status.py): ``is_final`` and the history ``fold``."""

from __future__ import annotations

import itertools
import random

import pytest

from protocol.messages import JobFailure, JobResult, JobStatusUpdate
from protocol.status import JobState, JobStatus, fold, is_final

FAILURE = JobFailure(reason="executor_disconnected", message="gone")


def update(status: str, attempt: int = 1, **fields: object) -> JobStatusUpdate:
    return JobStatusUpdate(job_id="job-1", status=status, attempt=attempt, at=1.0, **fields)


def fold_all(updates: list[JobStatusUpdate], state: JobState | None = None) -> JobState:
    state = state or JobState()
    for one in updates:
        state = fold(state, one)
    return state


def test_is_final_is_a_terminal_update_that_is_not_retrying() -> None:
    assert is_final(update("completed")) and is_final(update("cancelled"))
    assert not is_final(update("infra_failed", failure=FAILURE, retrying=True))
    assert is_final(update("infra_failed", failure=FAILURE))
    assert not is_final(update("accepted"))


def test_is_final_of_a_status_or_a_state() -> None:
    assert is_final(JobStatus.FAILED) and is_final("rejected") and not is_final("sent")
    assert is_final(JobState(status=JobStatus.COMPLETED)) and not is_final(JobState())


def test_a_job_moves_forward_through_its_stages() -> None:
    result = JobResult(exit_code=0, stdout="hi\n")
    state = fold_all([update("accepted", miner="m1"), update("executor_ready"), update("completed", result=result)])
    assert state == JobState(status=JobStatus.COMPLETED, attempt=1, miner="m1", result=result)


def test_out_of_order_statuses_of_one_attempt_never_move_it_back() -> None:
    state = fold_all([update("execution_done"), update("accepted"), update("volumes_ready")])
    assert (state.status, state.attempt) == (JobStatus.EXECUTION_DONE, 1)


def test_a_duplicate_changes_nothing() -> None:
    for one in [update("accepted"), update("completed"), update("infra_failed", failure=FAILURE, retrying=True)]:
        once = fold(JobState(), one)
        assert fold(once, one) == once


def test_a_final_state_is_never_overwritten() -> None:
    done = fold(JobState(), update("completed", result=JobResult(exit_code=0)))
    for late in [
        update("failed", failure=JobFailure(reason="timeout", message="late")),
        update("accepted", attempt=2),
        update("infra_failed", failure=FAILURE, retrying=True),
        update("cancelled", attempt=5),
    ]:
        assert fold(done, late) == done


def test_a_retrying_update_starts_the_next_attempt_from_sent() -> None:
    state = fold_all([update("accepted", miner="m1"), update("executor_ready")])
    state = fold(state, update("infra_failed", failure=FAILURE, retrying=True, miner="m1"))
    assert (state.status, state.attempt, state.miner, state.failure) == (JobStatus.SENT, 2, "m1", None)
    # The next attempt's first status moves it, though it is earlier in the order than the last one seen.
    state = fold(state, update("accepted", attempt=2, miner="m2"))
    assert (state.status, state.attempt, state.miner) == (JobStatus.ACCEPTED, 2, "m2")


def test_a_late_status_of_an_earlier_attempt_changes_nothing() -> None:
    state = fold(JobState(), update("accepted", attempt=2))
    assert fold(state, update("execution_done", attempt=1)) == state
    assert fold(state, update("completed", attempt=1, result=JobResult(exit_code=0))) == state
    assert fold(state, update("infra_failed", attempt=1, failure=FAILURE, retrying=True)) == state


def test_a_later_attempt_moves_the_job_whatever_its_status() -> None:
    state = fold_all([update("execution_done"), update("accepted", attempt=2)])
    assert (state.status, state.attempt) == (JobStatus.ACCEPTED, 2)


def test_the_final_update_of_the_last_attempt_ends_the_job() -> None:
    failure = JobFailure(reason="miner_disconnected", message="lost")
    state = fold_all(
        [
            update("accepted"),
            update("infra_failed", failure=FAILURE, retrying=True),
            update("accepted", attempt=2),
            update("infra_failed", attempt=2, failure=failure),
        ]
    )
    assert state == JobState(status=JobStatus.INFRA_FAILED, attempt=2, failure=failure)
    assert is_final(state)


HISTORY = [
    update("sent"),
    update("accepted", miner="m1"),
    update("executor_ready", miner="m1"),
    update("infra_failed", failure=FAILURE, retrying=True, miner="m1"),
    update("accepted", attempt=2, miner="m2"),
    update("volumes_ready", attempt=2, miner="m2"),
    update("completed", attempt=2, miner="m2", result=JobResult(exit_code=0)),
]


@pytest.mark.parametrize("seed", range(20))
def test_any_order_with_duplicates_ends_where_the_in_order_history_ends(seed: int) -> None:
    """Once the final update is in, the end does not depend on the order or on redeliveries."""
    rng = random.Random(seed)
    shuffled = HISTORY + rng.sample(HISTORY, 3)
    rng.shuffle(shuffled)
    assert fold_all(shuffled) == fold_all(HISTORY)


def test_every_order_of_a_history_ends_in_its_final_state() -> None:
    for order in itertools.permutations(HISTORY[-4:]):
        assert fold_all([*HISTORY[:3], *order]).status == JobStatus.COMPLETED
