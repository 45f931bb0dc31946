"""``grid control-proxy``: an ArmoniK program that knows nothing of Gridmarket, only its endpoint changed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKSessions
from armonik.common import SessionStatus

from facilitator_sdk.control import signed_channel
from grid.local import LocalGrid
from protocol.keys import Keypair
from tests.facilitator.control.conftest import control_proxy, key_file

# A plain ArmoniK client program: an insecure channel to an endpoint, the stock client, nothing else.
PLAIN_ARMONIK_PROGRAM = textwrap.dedent(
    """
    import datetime, json, sys
    import grpc
    from armonik.client import ArmoniKResults, ArmoniKSessions
    from armonik.common import TaskOptions

    with grpc.insecure_channel(sys.argv[1]) as channel:
        sessions = ArmoniKSessions(channel)
        options = TaskOptions(max_duration=datetime.timedelta(seconds=30), priority=1, max_retries=2)
        session_id = sessions.create_session(options, partition_ids=["cpu.small"])
        got = sessions.get_session(session_id)
        total, listed = sessions.list_sessions()
        results = ArmoniKResults(channel)
        result_id = results.create_results_metadata(["data"], session_id)["data"].result_id
        results.upload_result_data(result_id, session_id, b"through the proxy " * 40000)  # a stream of chunks
        round_trip = results.download_result_data(result_id, session_id) == b"through the proxy " * 40000
        cancelled = sessions.cancel_session(session_id)
        try:
            sessions.get_session("no-such-session")
            missing = None
        except grpc.RpcError as error:
            missing = [error.code().name, error.details()]
    print(json.dumps({"session_id": session_id, "status": got.status, "listed": [s.session_id for s in listed],
                      "total": total, "cancelled": cancelled.status, "missing": missing,
                      "round_trip": round_trip}))
    """
)


@pytest.fixture
def proxy(control_grid: LocalGrid, tmp_path: Path, keypair: Keypair) -> Iterator[str]:
    assert control_grid.control_endpoint is not None
    with control_proxy(control_grid.control_endpoint, key_file(tmp_path, keypair)) as address:
        yield address


def test_a_plain_armonik_program_runs_through_the_proxy_signed_with_the_clients_key(
    proxy: str, control_grid: LocalGrid, keypair: Keypair
) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", PLAIN_ARMONIK_PROGRAM, proxy], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert out["status"] == SessionStatus.RUNNING and out["cancelled"] == SessionStatus.CANCELLED
    assert out["listed"] == [out["session_id"]] and out["total"] == 1
    assert out["round_trip"] is True  # an upload stream, signed as a whole by the proxy
    assert out["missing"] == ["NOT_FOUND", "no session 'no-such-session'"]  # the facilitator's status, relayed
    # The session is the key's: its owner sees it over a signed channel of its own, as the proxy made it.
    assert control_grid.control_endpoint is not None
    with signed_channel(control_grid.control_endpoint, keypair) as channel:
        assert ArmoniKSessions(channel).get_session(out["session_id"]).status == SessionStatus.CANCELLED


def test_a_method_outside_the_api_is_unimplemented(proxy: str) -> None:
    with grpc.insecure_channel(proxy) as channel:
        call = channel.unary_unary(
            "/armonik.api.grpc.v1.Nothing/Here", request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.RpcError) as caught:
            call(b"")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
