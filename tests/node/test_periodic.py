"""The embedded runner of periodic tasks (node/periodic.py): same tasks as Celery beat, no broker."""

from __future__ import annotations

import threading

import pytest

from node.periodic import EmbeddedBeat, periodic_tasks, start_embedded_beat

CALLS: list[str] = []
FAILING_CALLS: list[int] = []


def record() -> None:
    CALLS.append("record")


def explode() -> None:
    FAILING_CALLS.append(1)
    raise RuntimeError("boom")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    FAILING_CALLS.clear()


def test_each_task_runs_first_at_once_then_every_interval() -> None:
    clock = Clock()
    beat = EmbeddedBeat([(f"{__name__}.record", 10.0)], clock=clock)
    due: dict[str, float] = {}
    assert beat.run_due(due) == 10.0 and CALLS == ["record"]
    clock.now += 5
    assert beat.run_due(due) == 5.0 and CALLS == ["record"]
    clock.now += 5
    beat.run_due(due)
    assert CALLS == ["record", "record"] and beat.runs[f"{__name__}.record"] == 2


def test_a_failing_task_is_logged_and_tried_again_next_turn(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    beat = EmbeddedBeat([(f"{__name__}.explode", 1.0), (f"{__name__}.record", 1.0)], clock=clock)
    due: dict[str, float] = {}
    beat.run_due(due)
    assert FAILING_CALLS == [1] and CALLS == ["record"], "a failure does not stop the tasks after it"
    assert "periodic task tests.node.test_periodic.explode failed" in caplog.text
    clock.now += 1
    beat.run_due(due)
    assert FAILING_CALLS == [1, 1]


def test_the_thread_runs_the_tasks_until_stopped() -> None:
    ran = threading.Event()
    CALLS.clear()
    beat = EmbeddedBeat([(f"{__name__}.record", 0.01)]).start()
    try:
        for _ in range(500):
            if len(CALLS) >= 3:
                ran.set()
                break
            threading.Event().wait(0.01)
    finally:
        beat.stop()
    assert ran.is_set()


def test_an_unknown_task_path_fails_at_start() -> None:
    with pytest.raises(ImportError):
        EmbeddedBeat([("tests.node.test_periodic.nothing_here", 1.0)])


def test_with_celery_the_process_runs_none_itself(settings: pytest.FixtureRequest) -> None:
    settings.GRID_PERIODIC = "celery"  # type: ignore[attr-defined]
    assert start_embedded_beat() is None


def test_tasks_come_from_the_roles_settings(settings: pytest.FixtureRequest) -> None:
    settings.GRID_PERIODIC_TASKS = [("a.b", 5)]  # type: ignore[attr-defined]
    assert periodic_tasks() == [("a.b", 5.0)]
