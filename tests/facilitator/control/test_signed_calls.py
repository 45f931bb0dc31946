"""Every control-plane call is signed: unsigned, tampered, re-aimed, stale and replayed calls are refused."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from facilitator_sdk.control import signed_aio_channel
from grid.local import LocalGrid
from protocol.armonik_api.protos import (
    health_checks_pb2,
    health_checks_pb2_grpc,
    result_status_pb2,
    results_pb2,
    results_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    versions_pb2,
    versions_pb2_grpc,
)
from protocol.keys import Keypair
from protocol.requests import SIGNATURE_HEADERS, sign_request
from protocol.signed_calls import CALL_METHOD, StreamDigest, call_digest, call_metadata

GET = "/armonik.api.grpc.v1.sessions.Sessions/GetSession"
CANCEL = "/armonik.api.grpc.v1.sessions.Sessions/CancelSession"


@pytest.fixture
def bare(control_grid: LocalGrid):
    """A stub on a channel that signs nothing: each test brings its own metadata."""
    assert control_grid.control_endpoint is not None
    with grpc.insecure_channel(control_grid.control_endpoint) as channel:
        yield sessions_pb2_grpc.SessionsStub(channel)


@pytest.fixture
def session_id(keypair: Keypair, bare) -> str:
    request = sessions_pb2.CreateSessionRequest()
    create = "/armonik.api.grpc.v1.sessions.Sessions/CreateSession"
    return bare.CreateSession(request, metadata=call_metadata(keypair, create, request)).session_id


def refused(call, request, metadata) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=metadata)
    return caught.value


def test_a_signed_call_is_served(keypair: Keypair, bare, session_id: str) -> None:
    request = sessions_pb2.GetSessionRequest(session_id=session_id)
    assert bare.GetSession(request, metadata=call_metadata(keypair, GET, request)).session.session_id == session_id


def test_an_unsigned_call_is_unauthenticated(bare, session_id: str) -> None:
    error = refused(bare.GetSession, sessions_pb2.GetSessionRequest(session_id=session_id), None)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details().startswith("missing_signature")


def test_a_request_changed_after_signing_is_refused(keypair: Keypair, bare, session_id: str) -> None:
    signed_for = sessions_pb2.GetSessionRequest(session_id="another-session")
    error = refused(
        bare.GetSession, sessions_pb2.GetSessionRequest(session_id=session_id), call_metadata(keypair, GET, signed_for)
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and error.details().startswith("bad_signature")


def test_a_signature_for_one_method_does_not_serve_another(keypair: Keypair, bare, session_id: str) -> None:
    request = sessions_pb2.CancelSessionRequest(session_id=session_id)
    error = refused(bare.CancelSession, request, call_metadata(keypair, GET, request))  # the bytes are the same
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and error.details().startswith("bad_signature")
    get = sessions_pb2.GetSessionRequest(session_id=session_id)
    assert bare.GetSession(get, metadata=call_metadata(keypair, GET, get)).session.status == 1  # still running


def test_a_signature_by_another_key_under_this_hotkey_is_refused(keypair: Keypair, bare, session_id: str) -> None:
    request = sessions_pb2.CancelSessionRequest(session_id=session_id)
    forged = dict(call_metadata(Keypair.generate(), CANCEL, request))
    forged["x-grid-hotkey"] = keypair.hotkey  # the owner's name on someone else's signature
    error = refused(bare.CancelSession, request, list(forged.items()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and error.details().startswith("bad_signature")


def test_a_stale_call_is_refused(keypair: Keypair, bare, session_id: str) -> None:
    request = sessions_pb2.GetSessionRequest(session_id=session_id)
    headers = sign_request(keypair, CALL_METHOD, GET, "", now=time.time() - 600, body_sha256=call_digest(request))
    error = refused(bare.GetSession, request, [(name.lower(), headers[name]) for name in SIGNATURE_HEADERS])
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and error.details().startswith("stale_request")


def test_a_replayed_call_is_refused(keypair: Keypair, bare, session_id: str) -> None:
    request = sessions_pb2.CancelSessionRequest(session_id=session_id)
    metadata = call_metadata(keypair, CANCEL, request)
    assert bare.CancelSession(request, metadata=metadata).session.status == 2  # cancelled
    error = refused(bare.CancelSession, request, metadata)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and error.details().startswith("replayed")


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda m: {**m, "x-grid-nonce": "short"}, "bad_nonce"),
        (lambda m: {**m, "x-grid-timestamp": "yesterday"}, "stale_request"),
        (lambda m: {**m, "x-grid-signature": "00" * 64}, "bad_signature"),
        (lambda m: {**m, "x-grid-hotkey": "not-a-key"}, "bad_signature"),
        (lambda m: {k: v for k, v in m.items() if k != "x-grid-signature"}, "missing_signature"),
    ],
)
def test_malformed_signature_metadata_is_refused_with_its_reason(keypair: Keypair, bare, mangle, reason: str) -> None:
    request = sessions_pb2.GetSessionRequest(session_id="whatever")
    metadata = mangle(dict(call_metadata(keypair, GET, request)))
    error = refused(bare.GetSession, request, list(metadata.items()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and error.details().startswith(reason), error.details()


def test_versions_and_health_through_the_async_signed_channel(control_grid: LocalGrid, keypair: Keypair) -> None:
    async def ask() -> tuple:
        assert control_grid.control_endpoint is not None
        async with signed_aio_channel(control_grid.control_endpoint, keypair) as channel:
            versions = await versions_pb2_grpc.VersionsStub(channel).ListVersions(versions_pb2.ListVersionsRequest())
            health = await health_checks_pb2_grpc.HealthChecksServiceStub(channel).CheckHealth(
                health_checks_pb2.CheckHealthRequest()
            )
            return versions, health

    versions, health = asyncio.run(ask())
    assert versions.core.startswith("gridmarket") and versions.api
    assert [(s.name, s.healthy) for s in health.services] == [
        ("database", health_checks_pb2.HEALTH_STATUS_ENUM_HEALTHY)
    ]


# -- request streams: signed as a whole, checked at their end, acted on only then -----------------

UPLOAD = "/armonik.api.grpc.v1.results.Results/UploadResultData"
Upload = results_pb2.UploadResultDataRequest


@pytest.fixture
def upload_target(control_grid: LocalGrid, keypair: Keypair, session_id: str):
    """A result waiting for its data, the stubs to reach it, and the stream that would fill it."""
    assert control_grid.control_endpoint is not None
    with grpc.insecure_channel(control_grid.control_endpoint) as channel:
        stub = results_pb2_grpc.ResultsStub(channel)
        create = "/armonik.api.grpc.v1.results.Results/CreateResultsMetaData"
        request = results_pb2.CreateResultsMetaDataRequest(
            session_id=session_id, results=[results_pb2.CreateResultsMetaDataRequest.ResultCreate(name="r")]
        )
        (result,) = stub.CreateResultsMetaData(request, metadata=call_metadata(keypair, create, request)).results
        stream = [
            Upload(id=Upload.ResultIdentifier(session_id=session_id, result_id=result.result_id)),
            Upload(data_chunk=b"first"),
            Upload(data_chunk=b"second"),
        ]
        yield stub, result.result_id, stream


def _stream_metadata(keypair: Keypair, stream: list) -> list[tuple[str, str]]:
    digest = StreamDigest()
    for message in stream:
        digest.add(message.SerializeToString(deterministic=True))
    return call_metadata(keypair, UPLOAD, None, body_sha256=digest.hexdigest())


def _status_of(stub, keypair: Keypair, result_id: str) -> int:
    request = results_pb2.GetResultRequest(result_id=result_id)
    get = "/armonik.api.grpc.v1.results.Results/GetResult"
    return stub.GetResult(request, metadata=call_metadata(keypair, get, request)).result.status


def test_an_upload_stream_signed_as_a_whole_is_served(keypair: Keypair, upload_target) -> None:
    stub, _, stream = upload_target
    reply = stub.UploadResultData(iter(stream), metadata=_stream_metadata(keypair, stream))
    assert reply.result.status == result_status_pb2.RESULT_STATUS_COMPLETED and reply.result.size == len(b"firstsecond")


@pytest.mark.parametrize("change", ["chunk changed", "chunk added", "chunk dropped", "unsigned", "signed as unary"])
def test_an_upload_stream_other_than_the_one_signed_is_refused_and_stores_nothing(
    keypair: Keypair, upload_target, change: str
) -> None:
    stub, result_id, stream = upload_target
    metadata = _stream_metadata(keypair, stream)
    sent = {
        "chunk changed": [stream[0], Upload(data_chunk=b"FIRST"), stream[2]],
        "chunk added": [*stream, Upload(data_chunk=b"more")],
        "chunk dropped": stream[:2],
        "unsigned": stream,
        "signed as unary": stream,
    }[change]
    if change == "unsigned":
        metadata = None
    if change == "signed as unary":
        metadata = call_metadata(keypair, UPLOAD, stream[0])
    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadResultData(iter(sent), metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value.details()
    assert _status_of(stub, keypair, result_id) == result_status_pb2.RESULT_STATUS_CREATED  # still waiting for data


@pytest.mark.parametrize(
    "stream, says",
    [
        ([], "starts with the result's identifier"),
        ([Upload(data_chunk=b"x")], "starts with the result's identifier"),
        (
            [Upload(id=Upload.ResultIdentifier(session_id="s", result_id="r")), Upload(id=Upload.ResultIdentifier())],
            "names its result once",
        ),
    ],
)
def test_a_malformed_upload_stream_is_refused(keypair: Keypair, upload_target, stream: list, says: str) -> None:
    stub, _, _ = upload_target
    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadResultData(iter(stream), metadata=_stream_metadata(keypair, stream))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and says in caught.value.details()


def test_an_upload_and_a_download_through_the_async_signed_channel(
    control_grid: LocalGrid, keypair: Keypair, upload_target
) -> None:
    _, result_id, stream = upload_target

    async def upload() -> results_pb2.UploadResultDataResponse:
        assert control_grid.control_endpoint is not None
        async with signed_aio_channel(control_grid.control_endpoint, keypair) as channel:

            async def messages():
                for message in stream:
                    yield message

            stub = results_pb2_grpc.ResultsStub(channel)
            reply = await stub.UploadResultData(messages())
            download = results_pb2.DownloadResultDataRequest(session_id=reply.result.session_id, result_id=result_id)
            data = b"".join([chunk.data_chunk async for chunk in stub.DownloadResultData(download)])  # a reply stream
            return reply, data

    reply, data = asyncio.run(upload())
    assert (reply.result.result_id, reply.result.size, data) == (result_id, len(b"firstsecond"), b"firstsecond")
