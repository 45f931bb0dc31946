"""The Results service through the stock ArmoniK client (``armonik.client.ArmoniKResults``) on a real grid."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions
from armonik.common import Result, ResultStatus, TaskOptions

from facilitator_sdk.control import signed_channel
from grid.local import LocalGrid
from protocol.armonik_api.protos import results_pb2, results_pb2_grpc
from protocol.keys import Keypair

OPTIONS = TaskOptions(max_duration=dt.timedelta(minutes=1), priority=1, max_retries=1)


@pytest.fixture
def session_id(sessions: ArmoniKSessions) -> str:
    return sessions.create_session(OPTIONS)


@pytest.fixture
def stored(control_grid: LocalGrid):
    """Where the grid's local store keeps an object's bytes (the control grid runs the local backend)."""
    return lambda key: control_grid.home / "objects" / "data" / key


def refused(call, *args) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args)
    return caught.value


def test_metadata_comes_first_and_has_no_data_yet(results: ArmoniKResults, session_id: str) -> None:
    created = results.create_results_metadata(["a", "b"], session_id)
    assert sorted(created) == ["a", "b"]
    result = results.get_result(created["a"].result_id)
    assert (result.name, result.session_id, result.status, result.size) == ("a", session_id, ResultStatus.CREATED, 0)
    assert result.owner_task_id == "" and result.created_at is not None
    error = refused(results.download_result_data, created["a"].result_id, session_id)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "is created: it has no data" in error.details()
    owners = results.get_owner_task_id([created["a"].result_id, created["b"].result_id], session_id)
    assert owners == {created["a"].result_id: "", created["b"].result_id: ""}  # the client's own, no task's


def test_inline_data_is_stored_with_its_digest_and_read_back_in_chunks(
    results: ArmoniKResults, session_id: str, stored
) -> None:
    chunk = results.get_service_config()
    assert 0 < chunk <= 4 * 1024 * 1024
    data = os.urandom(2 * chunk + 123)  # three chunks
    created = results.create_results({"big": data, "small": b"hello"}, session_id)
    big = results.get_result(created["big"].result_id)
    assert (big.status, big.size) == (ResultStatus.COMPLETED, len(data)) and big.completed_at is not None
    assert results.download_result_data(big.result_id, session_id) == data
    assert results.download_result_data(created["small"].result_id, session_id) == b"hello"
    assert hashlib.sha256(stored(big.opaque_id.decode()).read_bytes()).digest() == hashlib.sha256(data).digest()


def test_downloads_stream_in_chunks_no_larger_than_the_service_says(
    control_grid: LocalGrid, keypair: Keypair, results: ArmoniKResults, session_id: str
) -> None:
    chunk = results.get_service_config()
    created = results.create_results({"x": b"z" * (chunk * 2 + 1)}, session_id)
    assert control_grid.control_endpoint is not None
    with signed_channel(control_grid.control_endpoint, keypair) as channel:
        stub = results_pb2_grpc.ResultsStub(channel)
        sizes = [
            len(reply.data_chunk)
            for reply in stub.DownloadResultData(
                results_pb2.DownloadResultDataRequest(session_id=session_id, result_id=created["x"].result_id)
            )
        ]
    assert sizes == [chunk, chunk, 1]


def test_deleting_data_keeps_the_metadata(results: ArmoniKResults, session_id: str, stored) -> None:
    created = results.create_results({"gone": b"data"}, session_id)
    result_id = created["gone"].result_id
    results.delete_result_data([result_id], session_id)
    result = results.get_result(result_id)
    assert result.status == ResultStatus.DELETED and result.name == "gone"
    assert not stored(f"control/{session_id}/{result_id}").exists()
    error = refused(results.download_result_data, result_id, session_id)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "is deleted" in error.details()


def test_purging_a_session_deletes_its_results_data(
    sessions: ArmoniKSessions, results: ArmoniKResults, session_id: str, stored
) -> None:
    created = results.create_results({"one": b"1", "two": b"2"}, session_id)
    sessions.close_session(session_id)
    sessions.purge_session(session_id)
    for result in created.values():
        assert results.get_result(result.result_id).status == ResultStatus.DELETED
        assert not stored(f"control/{session_id}/{result.result_id}").exists()


def test_listing_filters_the_callers_results(results: ArmoniKResults, sessions: ArmoniKSessions) -> None:
    first, second = sessions.create_session(OPTIONS), sessions.create_session(OPTIONS)
    results.create_results_metadata(["m1", "m2"], first)
    done = results.create_results({"d1": b"x"}, second)
    total, in_first = results.list_results(Result.session_id == first)
    assert total == 2 and {r.name for r in in_first} == {"m1", "m2"}
    total, completed = results.list_results(Result.status == ResultStatus.COMPLETED)
    assert total == 1 and completed[0].result_id == done["d1"].result_id
    total, named = results.list_results((Result.session_id == second) & (Result.name == "d1"))
    assert total == 1 and named[0].name == "d1"


@pytest.mark.parametrize("end", ["cancel_session", "close_session"])
def test_a_session_that_is_not_open_takes_no_results(
    results: ArmoniKResults, sessions: ArmoniKSessions, session_id: str, end: str
) -> None:
    getattr(sessions, end)(session_id)
    for create in (
        results.create_results_metadata,
        lambda names, s: results.create_results(dict.fromkeys(names, b"x"), s),
    ):
        error = refused(create, ["late"], session_id)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "no new results" in error.details()
    assert results.list_results(Result.session_id == session_id)[0] == 0


def test_another_clients_results_are_not_found(
    control_grid: LocalGrid, results: ArmoniKResults, session_id: str
) -> None:
    mine = results.create_results({"secret": b"mine"}, session_id)["secret"].result_id
    assert control_grid.control_endpoint is not None
    with signed_channel(control_grid.control_endpoint, Keypair.generate()) as channel:
        other = ArmoniKResults(channel)
        assert refused(other.get_result, mine).code() == grpc.StatusCode.NOT_FOUND
        assert refused(other.download_result_data, mine, session_id).code() == grpc.StatusCode.NOT_FOUND
        assert refused(other.delete_result_data, [mine], session_id).code() == grpc.StatusCode.NOT_FOUND
        assert refused(other.create_results_metadata, ["intruder"], session_id).code() == grpc.StatusCode.NOT_FOUND
        assert other.list_results() == (0, [])
    assert results.download_result_data(mine, session_id) == b"mine"


def test_bad_result_requests_get_their_status(results: ArmoniKResults, session_id: str) -> None:
    error = refused(results.create_results_metadata, ["x" * 257], session_id)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "256" in error.details()
    assert refused(results.get_result, "no-such-result").code() == grpc.StatusCode.NOT_FOUND
    error = refused(results.get_owner_task_id, ["no-such-result"], session_id)
    assert error.code() == grpc.StatusCode.NOT_FOUND and "no-such-result" in error.details()
    error = refused(results.create_results_metadata, ["a"], "no-such-session")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert results.list_results(Result.session_id == session_id)[0] == 0


# -- ImportResultsData: data already in the store, attached by key, no copy -----------------------


def test_an_import_attaches_the_callers_object_without_a_copy_and_wakes_its_tasks(
    channel: grpc.Channel, results: ArmoniKResults, sessions: ArmoniKSessions, session_id: str, stored
) -> None:
    from armonik.client import ArmoniKTasks
    from armonik.common import TaskDefinition, TaskOptions, TaskStatus

    source = results.create_results({"source": b"imported bytes"}, session_id)["source"]
    key = results.get_result(source.result_id).opaque_id
    other = sessions.create_session(
        TaskOptions(max_duration=dt.timedelta(minutes=1), priority=1, max_retries=1, partition_id="cpu.small")
    )
    made = results.create_results_metadata(["target", "output"], other)
    target, output = made["target"].result_id, made["output"].result_id
    payload = results.create_results({"p": b"p"}, other)["p"].result_id
    (task,) = ArmoniKTasks(channel).submit_tasks(
        other, [TaskDefinition(payload_id=payload, data_dependencies=[target], expected_output_ids=[output])]
    )
    assert ArmoniKTasks(channel).get_task(task.id).status == TaskStatus.PENDING

    imported = results.import_data(other, [(target, key)])[target]
    assert (imported.status, imported.size, imported.opaque_id) == (ResultStatus.COMPLETED, len(b"imported bytes"), key)
    assert results.download_result_data(target, other) == b"imported bytes"
    assert ArmoniKTasks(channel).get_task(task.id).status == TaskStatus.SUBMITTED  # its input came
    results.delete_result_data([target], other)  # the import's data goes, the object stays its owner's
    assert results.download_result_data(source.result_id, session_id) == b"imported bytes"


@pytest.mark.parametrize(
    "opaque, code, says",
    [
        (b"uploads/" + b"0" * 64 + b"/x", "NOT_FOUND", "of yours in the store"),
        (b"../etc/passwd", "INVALID_ARGUMENT", "not an object key"),
        (b"\xff\xfe", "INVALID_ARGUMENT", "not an object key"),
    ],
)
def test_an_import_of_what_is_not_the_callers_is_refused_and_changes_nothing(
    results: ArmoniKResults, session_id: str, opaque: bytes, code: str, says: str
) -> None:
    target = results.create_results_metadata(["target"], session_id)["target"].result_id
    error = refused(results.import_data, session_id, [(target, opaque)])
    assert error.code() == getattr(grpc.StatusCode, code) and says in error.details()
    assert results.get_result(target).status == ResultStatus.CREATED


def test_another_clients_object_cannot_be_imported(
    control_grid: LocalGrid, results: ArmoniKResults, session_id: str
) -> None:
    theirs = Keypair.generate()
    with signed_channel(str(control_grid.control_endpoint), theirs) as their_channel:
        their_results = ArmoniKResults(their_channel)
        their_session = ArmoniKSessions(their_channel).create_session(OPTIONS)
        secret = their_results.create_results({"secret": b"theirs"}, their_session)["secret"].result_id
        key = their_results.get_result(secret).opaque_id
    target = results.create_results_metadata(["target"], session_id)["target"].result_id
    error = refused(results.import_data, session_id, [(target, key)])
    assert error.code() == grpc.StatusCode.NOT_FOUND  # as if it did not exist
    assert results.get_result(target).status == ResultStatus.CREATED
