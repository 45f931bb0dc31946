"""The Events service: every change of a session pushed in order, numbered, resumable from a cursor."""

from __future__ import annotations

import datetime as dt
import threading

import grpc
import pytest
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions

from protocol.armonik_api.protos import events_pb2, events_pb2_grpc, result_status_pb2, task_status_pb2

OPTIONS = TaskOptions(max_duration=dt.timedelta(minutes=1), priority=1, max_retries=1, partition_id="cpu.small")
E = events_pb2.EventsEnum
R = result_status_pb2.ResultStatus
T = task_status_pb2.TaskStatus


@pytest.fixture
def session_id(channel: grpc.Channel) -> str:
    return ArmoniKSessions(channel).create_session(OPTIONS)


@pytest.fixture
def stub(channel: grpc.Channel) -> events_pb2_grpc.EventsStub:
    return events_pb2_grpc.EventsStub(channel)


def take(stub: events_pb2_grpc.EventsStub, count: int, **request: object) -> list[events_pb2.EventSubscriptionResponse]:
    """The first ``count`` events of a subscription, then the stream dropped."""
    call = stub.GetEvents(events_pb2.EventSubscriptionRequest(**request), timeout=20)
    taken = []
    try:
        for event in call:
            taken.append(event)
            if len(taken) == count:
                break
    finally:
        call.cancel()
    return taken


def kinds(events: list) -> list[str]:
    return [e.WhichOneof("update") for e in events]


def test_a_subscription_starts_with_the_present_then_every_change_in_order(
    channel: grpc.Channel, results: ArmoniKResults, stub: events_pb2_grpc.EventsStub, session_id: str
) -> None:
    payload = results.create_results({"payload": b"p"}, session_id)["payload"].result_id
    present = take(stub, 1, session_id=session_id)
    assert kinds(present) == ["new_result"] and present[0].new_result.status == R.RESULT_STATUS_COMPLETED

    dependency = results.create_results_metadata(["dependency"], session_id)["dependency"].result_id
    output = results.create_results_metadata(["output"], session_id)["output"].result_id
    (task,) = ArmoniKTasks(channel).submit_tasks(
        session_id, [TaskDefinition(payload_id=payload, data_dependencies=[dependency], expected_output_ids=[output])]
    )
    results.upload_result_data(dependency, session_id, b"d")

    events = take(stub, 6, session_id=session_id, after_sequence=present[0].sequence)
    assert kinds(events) == [
        "new_result",  # dependency
        "new_result",  # output
        "new_task",
        "result_owner_update",
        "result_status_update",  # dependency completed
        "task_status_update",  # … so the task is queued
    ]
    assert [e.sequence for e in events] == list(range(present[0].sequence + 1, present[0].sequence + 7))
    assert all(e.session_id == session_id for e in events)
    new_task = events[2].new_task
    assert (new_task.task_id, new_task.status, list(new_task.data_dependencies)) == (
        task.id,
        T.TASK_STATUS_PENDING,
        [dependency],
    )
    owner = events[3].result_owner_update
    assert (owner.result_id, owner.previous_owner_id, owner.current_owner_id) == (output, "", task.id)
    assert (events[4].result_status_update.result_id, events[4].result_status_update.status) == (
        dependency,
        R.RESULT_STATUS_COMPLETED,
    )
    assert (events[5].task_status_update.task_id, events[5].task_status_update.status) == (
        task.id,
        T.TASK_STATUS_SUBMITTED,
    )


def test_a_subscriber_that_drops_mid_burst_resumes_from_its_cursor_and_misses_nothing(
    results: ArmoniKResults, stub: events_pb2_grpc.EventsStub, session_id: str
) -> None:
    names = [f"r{i}" for i in range(60)]

    burst = threading.Thread(target=lambda: [results.create_results_metadata([n], session_id) for n in names])
    burst.start()
    first = take(stub, 25, session_id=session_id, after_sequence=0)  # dropped while the burst goes on
    burst.join()
    rest = take(stub, 60 - len(first), session_id=session_id, after_sequence=first[-1].sequence)
    seen = first + rest
    assert [e.sequence for e in seen] == list(range(1, 61))  # each event exactly once, in order
    created = [results.get_result(e.new_result.result_id).name for e in seen]
    assert created == names


def test_kinds_and_filters_choose_the_events(
    channel: grpc.Channel, results: ArmoniKResults, stub: events_pb2_grpc.EventsStub, session_id: str
) -> None:
    from armonik.common import Result

    wanted, other = (results.create_results_metadata([n], session_id)[n].result_id for n in ("wanted", "other"))
    results.upload_result_data(other, session_id, b"o")
    results.upload_result_data(wanted, session_id, b"w")
    only = (Result.result_id == wanted).to_disjunction().to_message()
    events = take(
        stub,
        1,
        session_id=session_id,
        after_sequence=0,
        returned_events=[E.EVENTS_ENUM_RESULT_STATUS_UPDATE],
        results_filters=events_pb2.EventSubscriptionRequest().results_filters.FromString(only.SerializeToString()),
    )
    assert kinds(events) == ["result_status_update"] and events[0].result_status_update.result_id == wanted
    assert events[0].sequence == 4  # new, new, other's completion, then this one


def test_the_stock_client_waits_for_results_whether_done_already_or_later(
    channel: grpc.Channel, results: ArmoniKResults, session_id: str
) -> None:
    events = ArmoniKEvents(channel)
    done = results.create_results({"done": b"d"}, session_id)["done"].result_id
    events.wait_for_result_availability([done], session_id)  # the present says so: no wait

    later = results.create_results_metadata(["later"], session_id)["later"].result_id
    waited = threading.Event()
    waiter = threading.Thread(target=lambda: (events.wait_for_result_availability([later], session_id), waited.set()))
    waiter.start()
    assert not waited.wait(0.5)
    results.upload_result_data(later, session_id, b"l")
    waiter.join(20)
    assert waited.is_set()


def test_aborted_results_end_the_stock_clients_wait_with_an_error(
    channel: grpc.Channel, results: ArmoniKResults, session_id: str
) -> None:
    doomed = results.create_results_metadata(["doomed"], session_id)["doomed"].result_id
    ArmoniKSessions(channel).cancel_session(session_id)
    with pytest.raises(RuntimeError, match="aborted"):
        ArmoniKEvents(channel).wait_for_result_availability([doomed], session_id)


@pytest.mark.parametrize(
    "request_fields, code, says",
    [
        (dict(session_id="nope"), "NOT_FOUND", "no session 'nope'"),
        (dict(after_sequence=1000), "OUT_OF_RANGE", "there is no event 1000"),
        (dict(returned_events=[9]), "INVALID_ARGUMENT", "unknown event kind"),
    ],
)
def test_bad_subscriptions_get_their_status(
    stub: events_pb2_grpc.EventsStub, session_id: str, request_fields: dict, code: str, says: str
) -> None:
    request = {"session_id": session_id, **request_fields}
    with pytest.raises(grpc.RpcError) as caught:
        take(stub, 1, **request)
    assert caught.value.code() == getattr(grpc.StatusCode, code) and says in caught.value.details()
