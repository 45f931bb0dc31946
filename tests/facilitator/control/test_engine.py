"""The engine's readiness, in process: results complete in any order while a graph is being submitted.

Property: after every step, a task is pending exactly when one of its inputs is not completed yet, and
its count of unmet inputs says how many.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facilitator.control import engine
from facilitator.control.models import ControlDependency, ControlEvent, ControlResult, ControlSession
from protocol.armonik_api.protos import objects_pb2, result_status_pb2, session_status_pb2, task_status_pb2

pytestmark = pytest.mark.django_db

R = result_status_pb2.ResultStatus
T = task_status_pb2.TaskStatus
OPTIONS = objects_pb2.TaskOptions(partition_id="cpu.small")


def _session() -> ControlSession:
    return ControlSession.objects.create(
        id=str(uuid.uuid4()),
        client_hotkey="ab" * 32,
        status=session_status_pb2.SESSION_STATUS_RUNNING,
        options=OPTIONS.SerializeToString(),
        created_at=timezone.now(),
    )


def _results(session: ControlSession, count: int) -> list[str]:
    made = [
        ControlResult(
            id=str(uuid.uuid4()),
            session=session,
            name=f"r{i}",
            status=R.RESULT_STATUS_CREATED,
            created_at=timezone.now(),
        )
        for i in range(count)
    ]
    ControlResult.objects.bulk_create(made)
    return [r.id for r in made]


def _complete(session: ControlSession, result_id: str) -> None:
    with transaction.atomic():
        ControlResult.objects.filter(id=result_id).update(status=R.RESULT_STATUS_COMPLETED, completed_at=timezone.now())
        engine.complete_results(session.id, [result_id])


def _submit(session: ControlSession, payload: str, inputs: list[str], outputs: list[str]) -> None:
    with transaction.atomic():
        engine.submit(
            session,
            [
                engine.Creation(
                    payload_id=payload, data_dependencies=inputs, expected_output_ids=outputs, options=OPTIONS
                )
            ],
        )


def _check(session: ControlSession) -> None:
    completed = set(session.results.filter(status=R.RESULT_STATUS_COMPLETED).values_list("id", flat=True))
    for task in session.tasks.all():
        unmet = {task.payload_id, *task.data_dependencies} - completed
        assert task.remaining == len(unmet), task
        assert (task.status == T.TASK_STATUS_PENDING) == bool(unmet), (task, unmet)
        assert set(ControlDependency.objects.filter(task=task).values_list("result_id", flat=True)) == unmet


@st.composite
def graphs(draw: st.DrawFn) -> tuple[int, list[tuple[int, list[int]]], list[tuple[str, int]]]:
    """Sources, tasks (payload and inputs as result numbers; task k writes result sources + k), and an order."""
    sources = draw(st.integers(1, 6))
    count = draw(st.integers(1, 10))
    tasks = []
    for k in range(count):
        upstream = sources + k  # results 0 … upstream-1 exist as inputs: sources and earlier tasks' outputs
        inputs = draw(st.lists(st.integers(0, upstream - 1), max_size=4))
        tasks.append((draw(st.integers(0, upstream - 1)), inputs))
    steps = [("submit", k) for k in range(count)] + [("complete", r) for r in range(sources + count)]
    order = draw(st.permutations(steps))
    # an output is written only once its task exists (before, the submission would refuse it, rightly)
    placed, repaired, waiting = set(), [], {}
    for kind, n in order:
        if kind == "complete" and n >= sources and (n - sources) not in placed:
            waiting.setdefault(n - sources, []).append((kind, n))
            continue
        repaired.append((kind, n))
        if kind == "submit":
            placed.add(n)
            repaired += waiting.pop(n, [])
    return sources, tasks, repaired


@given(graphs())
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_task_is_left_pending_with_all_its_inputs_completed(graph) -> None:
    sources, tasks, order = graph
    session = _session()
    ids = _results(session, sources + len(tasks))
    for kind, n in order:
        if kind == "submit":
            payload, inputs = tasks[n]
            _submit(session, ids[payload], [ids[i] for i in inputs], [ids[sources + n]])
        else:
            _complete(session, ids[n])
        _check(session)
    # everything completed in the end: nothing waits
    assert not session.tasks.filter(status=T.TASK_STATUS_PENDING).exists()
    seqs = list(ControlEvent.objects.filter(session=session).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))  # every change recorded, numbered without a gap


def test_an_abort_ends_everything_downstream_and_nothing_upstream() -> None:
    session = _session()
    source, a, b, c, side = _results(session, 5)
    _complete(session, source)
    _submit(session, source, [], [a])  # writes a
    _submit(session, source, [a], [b])  # waits on a, writes b
    _submit(session, source, [b], [c])  # waits on b, writes c
    _submit(session, source, [], [side])  # independent
    with transaction.atomic():
        engine.abort_results(session.id, [a], "its task failed")
    by_output = {t.expected_output_ids[0]: t for t in session.tasks.all()}
    assert by_output[b].status == by_output[c].status == T.TASK_STATUS_ERROR
    assert by_output[b].output_error == f"input {a} was aborted: its task failed"
    assert by_output[c].output_error.startswith(f"input {b} was aborted: task {by_output[b].id} did not run")
    assert by_output[side].status == T.TASK_STATUS_SUBMITTED
    statuses = dict(session.results.values_list("id", "status"))
    assert [statuses[r] for r in (source, a, b, c, side)] == [
        R.RESULT_STATUS_COMPLETED,
        R.RESULT_STATUS_ABORTED,
        R.RESULT_STATUS_ABORTED,
        R.RESULT_STATUS_ABORTED,
        R.RESULT_STATUS_CREATED,
    ]


def test_merged_options_lay_set_fields_over_the_base_and_merge_the_map() -> None:
    base = objects_pb2.TaskOptions(priority=1, max_retries=3, partition_id="cpu.small", options={"a": "1", "b": "2"})
    base.max_duration.FromSeconds(60)
    override = objects_pb2.TaskOptions(priority=5, options={"b": "3"})
    merged = engine.merged_options(base, override)
    assert (merged.priority, merged.max_retries, merged.partition_id) == (5, 3, "cpu.small")
    assert dict(merged.options) == {"a": "1", "b": "3"} and merged.max_duration.seconds == 60


def test_the_sweep_makes_queued_tasks_batch_jobs_for_the_next_validator_and_fails_those_without_a_worker() -> None:
    from facilitator.control.dispatch import dispatch_queued
    from facilitator.models import Job
    from node.identity import own_keypair
    from protocol.spec import parse_spec, verify_job

    session = _session()
    source, out_a, out_b, out_c = _results(session, 4)
    _complete(session, source)
    worker = objects_pb2.TaskOptions(partition_id="cpu.small", options={"command": '["python3", "worker.py"]'})
    with transaction.atomic():
        engine.submit(
            session,
            [
                engine.Creation(payload_id=source, data_dependencies=[], expected_output_ids=[out_a], options=worker),
                engine.Creation(payload_id=source, data_dependencies=[], expected_output_ids=[out_b], options=worker),
                engine.Creation(payload_id=source, data_dependencies=[], expected_output_ids=[out_c], options=OPTIONS),
            ],
        )
    assert dispatch_queued(send=False) == 2
    by_output = {t.expected_output_ids[0]: t for t in session.tasks.all()}
    assert by_output[out_a].status == by_output[out_b].status == T.TASK_STATUS_DISPATCHED
    assert by_output[out_a].job_id == by_output[out_b].job_id  # one batch (no validator says it has free executors)
    job = Job.objects.get(id=by_output[out_a].job_id)
    assert job.validator_hotkey == "" and job.client_hotkey == own_keypair().hotkey  # for the next validator's round
    verify_job(job.client_hotkey, str(job.id), job.spec, job.client_signature)  # signed by the facilitator
    batch = parse_spec(job.spec).tasks
    assert batch is not None and {t.task_id for t in batch.tasks} == {by_output[out_a].id, by_output[out_b].id}
    assert by_output[out_c].status == T.TASK_STATUS_ERROR and 'options["command"]' in by_output[out_c].status_message
    assert dispatch_queued(send=False) == 0  # nothing left queued
