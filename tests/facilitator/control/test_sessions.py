"""The Sessions service through the stock ArmoniK client (``armonik.client.ArmoniKSessions``) on a real grid."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from armonik.client import ArmoniKSessions
from armonik.common import Direction, Session, SessionStatus, TaskOptions

from facilitator_sdk.control import signed_channel
from grid.local import LocalGrid
from protocol.keys import Keypair

OPTIONS = TaskOptions(
    max_duration=dt.timedelta(minutes=5),
    priority=2,
    max_retries=3,
    partition_id="cpu.small",
    options={"image": "python:3.11-slim", "command": "python worker.py"},
)


def refused(call, *args) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args)
    return caught.value


def test_a_created_session_runs_with_the_options_and_partitions_it_was_given(sessions: ArmoniKSessions) -> None:
    session_id = sessions.create_session(OPTIONS, partition_ids=["cpu.small", "gpu.a100"])
    session = sessions.get_session(session_id)
    assert (session.session_id, session.status) == (session_id, SessionStatus.RUNNING)
    assert session.partition_ids == ["cpu.small", "gpu.a100"]
    assert session.options.max_duration == dt.timedelta(minutes=5)
    assert (session.options.priority, session.options.max_retries) == (2, 3)
    assert session.options.options == OPTIONS.options
    assert session.client_submission and session.worker_submission
    assert session.created_at is not None and session.cancelled_at is None and session.closed_at is None


def test_a_session_goes_through_pause_resume_close_purge_and_delete(sessions: ArmoniKSessions) -> None:
    session_id = sessions.create_session(OPTIONS)
    assert sessions.pause_session(session_id).status == SessionStatus.PAUSED
    assert sessions.get_session(session_id).status == SessionStatus.PAUSED
    assert sessions.resume_session(session_id).status == SessionStatus.RUNNING
    closed = sessions.close_session(session_id)
    assert closed.status == SessionStatus.CLOSED and closed.closed_at is not None
    assert closed.duration is not None and closed.duration >= dt.timedelta(0)
    purged = sessions.purge_session(session_id)
    assert purged.status == SessionStatus.PURGED and purged.purged_at is not None
    deleted = sessions.delete_session(session_id)
    assert deleted.status == SessionStatus.DELETED and deleted.deleted_at is not None
    error = refused(sessions.get_session, session_id)
    assert error.code() == grpc.StatusCode.NOT_FOUND and session_id in error.details()


def test_a_cancelled_session_stays_cancelled(sessions: ArmoniKSessions) -> None:
    session_id = sessions.create_session(OPTIONS)
    cancelled = sessions.cancel_session(session_id)
    assert cancelled.status == SessionStatus.CANCELLED and cancelled.cancelled_at is not None
    for call in (sessions.cancel_session, sessions.pause_session, sessions.resume_session, sessions.close_session):
        error = refused(call, session_id)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, call
        assert "is cancelled" in error.details()
    assert sessions.get_session(session_id).status == SessionStatus.CANCELLED
    assert sessions.purge_session(session_id).status == SessionStatus.PURGED


@pytest.mark.parametrize(
    ("before", "call", "status_after"),
    [
        ([], "resume_session", SessionStatus.RUNNING),  # resuming what is not paused
        ([], "purge_session", SessionStatus.RUNNING),  # purging a running session
        (["pause_session"], "pause_session", SessionStatus.PAUSED),
        (["close_session"], "close_session", SessionStatus.CLOSED),
        (["close_session"], "pause_session", SessionStatus.CLOSED),
        (["close_session", "purge_session"], "purge_session", SessionStatus.PURGED),
        (["close_session", "purge_session"], "cancel_session", SessionStatus.PURGED),
    ],
)
def test_a_transition_from_the_wrong_status_is_refused_and_changes_nothing(
    sessions: ArmoniKSessions, before: list[str], call: str, status_after: SessionStatus
) -> None:
    session_id = sessions.create_session(OPTIONS)
    for step in before:
        getattr(sessions, step)(session_id)
    error = refused(getattr(sessions, call), session_id)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert sessions.get_session(session_id).status == status_after


def test_stopping_submission_keeps_the_status_and_says_who_may_submit(sessions: ArmoniKSessions) -> None:
    session_id = sessions.create_session(OPTIONS)
    stopped = sessions.stop_submission_session(session_id, client=True, worker=False)
    assert (stopped.status, stopped.client_submission, stopped.worker_submission) == (
        SessionStatus.RUNNING,
        False,
        True,
    )
    stopped = sessions.stop_submission_session(session_id, client=False, worker=True)
    assert (stopped.client_submission, stopped.worker_submission) == (False, False)  # never reopened


def test_listing_filters_sorts_and_pages_the_clients_own_sessions(sessions: ArmoniKSessions) -> None:
    ids = [sessions.create_session(OPTIONS) for _ in range(5)]
    sessions.cancel_session(ids[1])
    sessions.close_session(ids[3])
    total, running = sessions.list_sessions(Session.status == SessionStatus.RUNNING)
    assert total == 3 and {s.session_id for s in running} == {ids[0], ids[2], ids[4]}
    total, cancelled_or_closed = sessions.list_sessions(
        (Session.status == SessionStatus.CANCELLED) | (Session.status == SessionStatus.CLOSED)
    )
    assert total == 2 and {s.session_id for s in cancelled_or_closed} == {ids[1], ids[3]}
    total, newest_first = sessions.list_sessions(sort_field=Session.created_at, sort_direction=Direction.DESC)
    assert total == 5 and [s.session_id for s in newest_first] == ids[::-1]
    pages = [sessions.list_sessions(page=page, page_size=2, sort_field=Session.created_at)[1] for page in range(3)]
    assert [[s.session_id for s in page] for page in pages] == [ids[0:2], ids[2:4], ids[4:]]
    total, by_id = sessions.list_sessions(Session.session_id == ids[2])
    assert total == 1 and by_id[0].session_id == ids[2]


def test_one_client_never_sees_or_touches_another_clients_sessions(
    control_grid: LocalGrid, sessions: ArmoniKSessions
) -> None:
    mine = sessions.create_session(OPTIONS)
    assert control_grid.control_endpoint is not None
    with signed_channel(control_grid.control_endpoint, Keypair.generate()) as other_channel:
        other = ArmoniKSessions(other_channel)
        for call in (other.get_session, other.cancel_session, other.close_session, other.delete_session):
            error = refused(call, mine)
            assert error.code() == grpc.StatusCode.NOT_FOUND, call
        assert other.list_sessions() == (0, [])
    assert sessions.get_session(mine).status == SessionStatus.RUNNING


@pytest.mark.parametrize(
    ("options", "partitions", "reason"),
    [
        (TaskOptions(dt.timedelta(minutes=1), priority=1, max_retries=-1), [], "max_retries"),
        (TaskOptions(dt.timedelta(seconds=-5), priority=1, max_retries=1), [], "max_duration"),
        (TaskOptions(dt.timedelta(minutes=1), 1, 1, partition_id="gpu.a100"), ["cpu.small"], "default partition"),
        (TaskOptions(dt.timedelta(minutes=1), priority=1, max_retries=1), [""], "partition ids"),
    ],
)
def test_a_session_with_bad_options_is_refused_and_not_created(
    sessions: ArmoniKSessions, options: TaskOptions, partitions: list[str], reason: str
) -> None:
    before = sessions.list_sessions()[0]
    error = refused(sessions.create_session, options, partitions)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in error.details()
    assert sessions.list_sessions()[0] == before


def test_unknown_sessions_and_bad_pages_get_their_status(sessions: ArmoniKSessions) -> None:
    assert refused(sessions.get_session, "no-such-session").code() == grpc.StatusCode.NOT_FOUND
    assert refused(sessions.pause_session, "").code() == grpc.StatusCode.NOT_FOUND
    error = refused(lambda: sessions.list_sessions(page=-1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "page" in error.details()
    error = refused(lambda: sessions.list_sessions(page_size=0))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_size" in error.details()
