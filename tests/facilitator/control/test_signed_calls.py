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
    sessions_pb2,
    sessions_pb2_grpc,
    versions_pb2,
    versions_pb2_grpc,
)
from protocol.keys import Keypair
from protocol.requests import SIGNATURE_HEADERS, sign_request
from protocol.signed_calls import CALL_METHOD, call_digest, call_metadata

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
