"""The Tasks service and the engine's readiness through the stock ArmoniK client on a real grid.

Tasks are not dispatched to executors yet: a task whose inputs are all completed is queued
(``submitted``) and stays so; these tests follow everything up to there.
"""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import ResultStatus, Task, TaskDefinition, TaskOptions, TaskStatus

OPTIONS = TaskOptions(max_duration=dt.timedelta(minutes=1), priority=1, max_retries=2, partition_id="cpu.small")


@pytest.fixture
def session_id(sessions: ArmoniKSessions) -> str:
    return sessions.create_session(OPTIONS, partition_ids=["cpu.small", "cpu.large"])


def refused(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def payload(results: ArmoniKResults, session_id: str, data: bytes = b"payload") -> str:
    return results.create_results({"payload": data}, session_id)["payload"].result_id


def created(results: ArmoniKResults, session_id: str, *names: str) -> list[str]:
    made = results.create_results_metadata(list(names), session_id)
    return [made[n].result_id for n in names]


def test_a_task_with_its_inputs_completed_is_queued_at_once(
    results: ArmoniKResults, tasks: ArmoniKTasks, session_id: str
) -> None:
    payload_id = payload(results, session_id)
    (output,) = created(results, session_id, "output")
    (submitted,) = tasks.submit_tasks(session_id, [TaskDefinition(payload_id=payload_id, expected_output_ids=[output])])
    task = tasks.get_task(submitted.id)
    assert (task.session_id, task.payload_id, task.expected_output_ids) == (session_id, payload_id, [output])
    assert task.status == TaskStatus.SUBMITTED and task.data_dependencies == []
    assert task.initial_task_id == task.id and task.created_by == "" and task.retry_of_ids == []
    assert task.created_at is not None and task.submitted_at is not None and task.ended_at is None
    assert (task.options.partition_id, task.options.max_retries) == ("cpu.small", 2)  # the session's defaults
    assert results.get_result(output).owner_task_id == task.id  # the task owns what it will write
    assert tasks.get_result_ids([task.id]) == {task.id: [output]}


def test_a_task_waits_for_its_dependencies_and_is_queued_by_the_upload_that_completes_the_last(
    results: ArmoniKResults, tasks: ArmoniKTasks, session_id: str
) -> None:
    """Seed 000's delayed upload: the task is submitted first, its input uploaded later."""
    payload_id = payload(results, session_id)
    first, second, output = created(results, session_id, "first", "second", "output")
    definition = TaskDefinition(
        payload_id=payload_id, data_dependencies=[first, second, first], expected_output_ids=[output]
    )
    (submitted,) = tasks.submit_tasks(session_id, [definition])
    assert tasks.get_task(submitted.id).status == TaskStatus.PENDING
    assert tasks.get_task(submitted.id).submitted_at is None

    results.upload_result_data(first, session_id, b"one" * 100_000)  # several chunks
    assert tasks.get_task(submitted.id).status == TaskStatus.PENDING  # one input is still to come
    results.upload_result_data(second, session_id, b"")
    task = tasks.get_task(submitted.id)
    assert task.status == TaskStatus.SUBMITTED and task.submitted_at is not None

    uploaded = results.get_result(first)
    assert (uploaded.status, uploaded.size) == (ResultStatus.COMPLETED, 300_000)
    assert results.download_result_data(first, session_id) == b"one" * 100_000
    assert results.download_result_data(second, session_id) == b""


def test_task_options_are_the_sessions_with_the_requests_and_the_tasks_own_laid_over(
    results: ArmoniKResults, tasks: ArmoniKTasks, session_id: str
) -> None:
    payload_id = payload(results, session_id)
    plain, own = created(results, session_id, "plain", "own")
    request_options = TaskOptions(max_duration=dt.timedelta(minutes=1), priority=3, max_retries=2, options={"a": "1"})
    task_options = TaskOptions(
        max_duration=dt.timedelta(seconds=30), priority=5, max_retries=0, partition_id="cpu.large", options={"b": "2"}
    )
    submitted = tasks.submit_tasks(
        session_id,
        [
            TaskDefinition(payload_id=payload_id, expected_output_ids=[plain]),
            TaskDefinition(payload_id=payload_id, expected_output_ids=[own], options=task_options),
        ],
        default_task_options=request_options,
    )
    first, second = (tasks.get_task(t.id).options for t in submitted)
    assert (first.priority, first.partition_id, first.options) == (3, "cpu.small", {"a": "1"})
    assert (second.priority, second.partition_id, second.max_duration) == (5, "cpu.large", dt.timedelta(seconds=30))
    assert second.options == {"a": "1", "b": "2"}


def test_cancelling_a_task_aborts_its_outputs_and_cancels_what_waits_on_them(
    results: ArmoniKResults, tasks: ArmoniKTasks, session_id: str
) -> None:
    payload_id = payload(results, session_id)
    middle, final = created(results, session_id, "middle", "final")
    (upstream,) = tasks.submit_tasks(session_id, [TaskDefinition(payload_id=payload_id, expected_output_ids=[middle])])
    (downstream,) = tasks.submit_tasks(
        session_id, [TaskDefinition(payload_id=payload_id, data_dependencies=[middle], expected_output_ids=[final])]
    )
    assert tasks.get_task(downstream.id).status == TaskStatus.PENDING

    tasks.cancel_tasks([upstream.id])
    assert tasks.get_task(upstream.id).status == TaskStatus.CANCELLED
    assert results.get_result(middle).status == ResultStatus.ABORTED
    after = tasks.get_task(downstream.id)
    assert after.status == TaskStatus.CANCELLED and f"input {middle} was aborted" in after.status_message
    assert after.ended_at is not None and after.output.success is False
    assert results.get_result(final).status == ResultStatus.ABORTED
    tasks.cancel_tasks([upstream.id])  # again: nothing more to do, no error


def test_pausing_holds_queued_tasks_and_resuming_queues_them_again(
    sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks, session_id: str
) -> None:
    payload_id = payload(results, session_id)
    before, during, dependency = created(results, session_id, "before", "during", "dependency")
    (queued,) = tasks.submit_tasks(session_id, [TaskDefinition(payload_id=payload_id, expected_output_ids=[before])])
    sessions.pause_session(session_id)
    assert tasks.get_task(queued.id).status == TaskStatus.PAUSED
    (waiting,) = tasks.submit_tasks(  # a paused session still takes tasks
        session_id,
        [TaskDefinition(payload_id=payload_id, data_dependencies=[dependency], expected_output_ids=[during])],
    )
    results.upload_result_data(dependency, session_id, b"x")
    assert tasks.get_task(waiting.id).status == TaskStatus.PAUSED  # ready, but the session is paused
    sessions.resume_session(session_id)
    assert {tasks.get_task(t.id).status for t in (queued, waiting)} == {TaskStatus.SUBMITTED}


def test_cancelling_the_session_cancels_its_tasks_and_aborts_its_unwritten_results(
    sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks, session_id: str
) -> None:
    payload_id = payload(results, session_id)
    output, loose = created(results, session_id, "output", "loose")
    (task,) = tasks.submit_tasks(session_id, [TaskDefinition(payload_id=payload_id, expected_output_ids=[output])])
    sessions.cancel_session(session_id)
    assert tasks.get_task(task.id).status == TaskStatus.CANCELLED
    assert {results.get_result(r).status for r in (output, loose)} == {ResultStatus.ABORTED}
    assert results.get_result(payload_id).status == ResultStatus.COMPLETED  # written data stays


def test_listing_and_counting_see_the_clients_tasks_by_session_and_status(
    sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks, session_id: str
) -> None:
    payload_id = payload(results, session_id)
    outputs = created(results, session_id, *(f"out{i}" for i in range(5)))
    (dependency,) = created(results, session_id, "dependency")
    ready = tasks.submit_tasks(
        session_id, [TaskDefinition(payload_id=payload_id, expected_output_ids=[o]) for o in outputs[:3]]
    )
    waiting = tasks.submit_tasks(
        session_id,
        [
            TaskDefinition(payload_id=payload_id, data_dependencies=[dependency], expected_output_ids=[o])
            for o in outputs[3:]
        ],
    )
    other = sessions.create_session(OPTIONS)
    (elsewhere,) = created(results, other, "elsewhere")
    tasks.submit_tasks(other, [TaskDefinition(payload_id=payload(results, other), expected_output_ids=[elsewhere])])

    total, listed = tasks.list_tasks(Task.session_id == session_id, page_size=2)
    assert total == 5 and len(listed) == 2
    total, listed = tasks.list_tasks((Task.session_id == session_id) & (Task.status == TaskStatus.PENDING))
    assert total == 2 and {t.id for t in listed} == {t.id for t in waiting}
    total, summaries = tasks.list_tasks(Task.session_id == session_id, detailed=False, page_size=10)
    assert total == 5 and {t.id for t in summaries} == {t.id for t in ready + waiting}
    assert tasks.count_tasks_by_status(Task.session_id == session_id) == {
        TaskStatus.SUBMITTED: 3,
        TaskStatus.PENDING: 2,
    }
    assert tasks.count_tasks_by_status(Task.session_id == other) == {TaskStatus.SUBMITTED: 1}


@pytest.mark.parametrize(
    "case",
    [
        "unknown payload",
        "unknown dependency",
        "aborted dependency",
        "output already written",
        "output of another task",
        "output twice",
        "input and output",
        "partition not the sessions",
        "no payload",
    ],
)
def test_a_bad_submission_is_refused_and_creates_nothing(
    sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks, session_id: str, case: str
) -> None:
    payload_id = payload(results, session_id)
    output, spare, aborted_owner_output = created(results, session_id, "output", "spare", "aborted")
    (owner,) = tasks.submit_tasks(session_id, [TaskDefinition(payload_id=payload_id, expected_output_ids=[spare])])
    (doomed,) = tasks.submit_tasks(
        session_id, [TaskDefinition(payload_id=payload_id, expected_output_ids=[aborted_owner_output])]
    )
    tasks.cancel_tasks([doomed.id])
    definitions, code, says = {
        "unknown payload": ([dict(payload_id="nope", expected_output_ids=[output])], "NOT_FOUND", "no result 'nope'"),
        "unknown dependency": (
            [dict(payload_id=payload_id, data_dependencies=["nope"], expected_output_ids=[output])],
            "NOT_FOUND",
            "no result 'nope'",
        ),
        "aborted dependency": (
            [dict(payload_id=payload_id, data_dependencies=[aborted_owner_output], expected_output_ids=[output])],
            "FAILED_PRECONDITION",
            "is aborted: it will never come",
        ),
        "output already written": (
            [dict(payload_id=payload_id, expected_output_ids=[payload(results, session_id, b"done")])],
            "FAILED_PRECONDITION",
            "only a result still to be written",
        ),
        "output of another task": (
            [dict(payload_id=payload_id, expected_output_ids=[spare])],
            "FAILED_PRECONDITION",
            f"already the output of task {owner.id}",
        ),
        "output twice": (
            [dict(payload_id=payload_id, expected_output_ids=[output])] * 2,
            "INVALID_ARGUMENT",
            "the expected output of two tasks",
        ),
        "input and output": (
            [dict(payload_id=payload_id, data_dependencies=[output], expected_output_ids=[output])],
            "INVALID_ARGUMENT",
            "both an input and an output",
        ),
        "partition not the sessions": (
            [dict(payload_id=payload_id, expected_output_ids=[output], options=OPTIONS_ON("gpu.a100"))],
            "INVALID_ARGUMENT",
            "is not one of the session's",
        ),
        "no payload": ([dict(payload_id="", expected_output_ids=[output])], "INVALID_ARGUMENT", "needs a payload"),
    }[case]
    before = tasks.count_tasks_by_status(Task.session_id == session_id)
    error = refused(tasks.submit_tasks, session_id, [TaskDefinition(**d) for d in definitions])
    assert error.code() == getattr(grpc.StatusCode, code) and says in error.details()
    assert tasks.count_tasks_by_status(Task.session_id == session_id) == before
    assert results.get_result(output).owner_task_id == ""


def OPTIONS_ON(partition: str) -> TaskOptions:
    return TaskOptions(max_duration=dt.timedelta(minutes=1), priority=1, max_retries=2, partition_id=partition)


@pytest.mark.parametrize("transition", ["close", "cancel", "stop"])
def test_a_session_not_taking_tasks_refuses_them(
    sessions: ArmoniKSessions, results: ArmoniKResults, tasks: ArmoniKTasks, session_id: str, transition: str
) -> None:
    payload_id = payload(results, session_id)
    (output,) = created(results, session_id, "output")
    {
        "close": lambda: sessions.close_session(session_id),
        "cancel": lambda: sessions.cancel_session(session_id),
        "stop": lambda: sessions.stop_submission_session(session_id, client=True, worker=False),
    }[transition]()
    error = refused(
        tasks.submit_tasks, session_id, [TaskDefinition(payload_id=payload_id, expected_output_ids=[output])]
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "no new tasks" in error.details()


def test_another_clients_tasks_are_not_found(
    results: ArmoniKResults, tasks: ArmoniKTasks, session_id: str, control_grid, keypair
) -> None:
    from facilitator_sdk.control import signed_channel
    from protocol.keys import Keypair

    (output,) = created(results, session_id, "output")
    (task,) = tasks.submit_tasks(
        session_id, [TaskDefinition(payload_id=payload(results, session_id), expected_output_ids=[output])]
    )
    with signed_channel(control_grid.control_endpoint, Keypair.generate()) as stranger_channel:
        stranger = ArmoniKTasks(stranger_channel)
        for call, args in [
            (stranger.get_task, [task.id]),
            (stranger.cancel_tasks, [[task.id]]),
            (stranger.get_result_ids, [[task.id]]),
        ]:
            assert refused(call, *args).code() == grpc.StatusCode.NOT_FOUND
        assert stranger.list_tasks(Task.session_id == session_id) == (0, [])
        assert stranger.count_tasks_by_status() == {}
        error = refused(stranger.submit_tasks, session_id, [TaskDefinition(payload_id="x", expected_output_ids=["y"])])
        assert error.code() == grpc.StatusCode.NOT_FOUND
    assert tasks.get_task(task.id).status == TaskStatus.SUBMITTED
