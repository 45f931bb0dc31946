"""The shared HTTP client and retry loop (executor/transfer.py), against a real HTTP server on loopback.

Digests and size limits are checked by the callers (downloads.py, uploads.py; their own tests);
transfer.py's contract is the client's settings, which errors are retried, and how final ones read.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from executor.errors import DataPlaneError, HostUnresolved, HttpStatusError
from executor.transfer import check_status, guard, is_transient, new_client, redact, require_store_url, with_retries
from protocol.status import FailureReason
from tests.executor.httpserver import Server, policy, serve


@pytest.fixture
def server() -> Iterator[Server]:
    with serve() as running:
        yield running


async def get(url: str, **overrides: object) -> bytes:
    """One streamed GET the way the data plane makes it: check_status, then the body."""
    async with new_client(policy(**overrides)) as client, client.stream("GET", url) as response:
        await check_status(response)
        return await response.aread()


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_a_5xx_is_retried_until_it_succeeds(server: Server) -> None:
    url = server.route("/flaky", b"payload", fail_times=2, fail_status=503)

    body = await with_retries(lambda: get(url), policy(retries=3), reason=FailureReason.DOWNLOAD_FAILED, what="x")

    assert body == b"payload"
    assert server.hits["/flaky"] == 3


async def test_retries_are_bounded_and_the_last_error_is_reported(server: Server) -> None:
    url = server.route("/down", fail_times=99, fail_status=502)

    with pytest.raises(DataPlaneError) as caught:
        await with_retries(lambda: get(url), policy(retries=2), reason=FailureReason.UPLOAD_FAILED, what="output 'a'")

    assert caught.value.reason is FailureReason.UPLOAD_FAILED
    assert server.hits["/down"] == 3  # the first try and two retries
    assert "output 'a'" in caught.value.message
    assert "502" in caught.value.message and "gave up after 3 attempts" in caught.value.message


async def test_no_retries_means_one_attempt(server: Server) -> None:
    url = server.route("/down", fail_times=99, fail_status=500)

    with pytest.raises(DataPlaneError, match="gave up after 1 attempt"):
        await with_retries(lambda: get(url), policy(retries=0), reason=FailureReason.DOWNLOAD_FAILED, what="x")
    assert server.hits["/down"] == 1


@pytest.mark.parametrize("status", [400, 403, 404, 410])
async def test_a_4xx_is_final_at_once(server: Server, status: int) -> None:
    url = server.route("/gone", b"nope: signature expired", status=status)

    with pytest.raises(DataPlaneError) as caught:
        await with_retries(lambda: get(url), policy(retries=5), reason=FailureReason.DOWNLOAD_FAILED, what="in")

    assert server.hits["/gone"] == 1
    assert caught.value.reason is FailureReason.DOWNLOAD_FAILED
    assert str(status) in caught.value.message
    assert "gave up" not in caught.value.message


async def test_check_status_quotes_a_short_normalised_snippet_of_the_reply(server: Server) -> None:
    url = server.route("/err", b"line one\n\n   line\ttwo " + b"x" * 5000, status=500)

    with pytest.raises(HttpStatusError) as caught:
        await get(url)

    assert caught.value.status == 500
    assert caught.value.snippet.startswith("line one line two x")
    assert len(caught.value.snippet) <= 200


async def test_a_success_passes_check_status(server: Server) -> None:
    assert await get(server.route("/ok", b"fine")) == b"fine"


async def test_a_refused_connection_is_retried_then_reported(server: Server) -> None:
    url = f"http://127.0.0.1:{closed_port()}/x"
    attempts = 0

    async def attempt() -> bytes:
        nonlocal attempts
        attempts += 1
        return await get(url)

    with pytest.raises(DataPlaneError, match=r"ConnectError.*gave up after 3 attempts"):
        await with_retries(attempt, policy(retries=2), reason=FailureReason.DOWNLOAD_FAILED, what="x")
    assert attempts == 3


async def test_a_slow_server_times_out_per_the_policy_and_is_retried(server: Server) -> None:
    url = server.route("/slow", b"late", delay=1.0)
    started = time.monotonic()

    with pytest.raises(DataPlaneError, match=r"timed out waiting for data.*gave up after 2 attempts"):
        await with_retries(
            lambda: get(url, read_timeout_s=0.2), policy(retries=1), reason=FailureReason.DOWNLOAD_FAILED, what="x"
        )

    assert server.hits["/slow"] == 2
    assert time.monotonic() - started < 1.5  # neither attempt waited for the 1 s reply


async def test_a_redirect_is_not_followed_by_the_client(server: Server) -> None:
    target = server.route("/target", b"secret")
    server.route("/hop", status=302, headers={"Location": target})

    async with new_client(policy()) as client:
        response = await client.get(server.url("/hop"))

    assert response.status_code == 302
    assert server.hits["/target"] == 0


async def test_proxy_variables_are_ignored(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy that does not exist: the request only succeeds if it goes direct.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{closed_port()}")

    assert await get(server.route("/direct", b"ok")) == b"ok"


async def test_an_unexpected_error_is_not_swallowed() -> None:
    async def attempt() -> None:
        raise ValueError("a bug, not a transfer error")

    with pytest.raises(ValueError):
        await with_retries(attempt, policy(), reason=FailureReason.DOWNLOAD_FAILED, what="x")


async def test_a_data_plane_error_from_an_attempt_is_final() -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise DataPlaneError(FailureReason.INPUT_TOO_LARGE, "over the limit")

    with pytest.raises(DataPlaneError) as caught:
        await with_retries(attempt, policy(retries=5), reason=FailureReason.DOWNLOAD_FAILED, what="x")
    assert calls == 1
    assert caught.value.reason is FailureReason.INPUT_TOO_LARGE


def test_is_transient_classifies_errors() -> None:
    assert is_transient(HttpStatusError(500)) and is_transient(HttpStatusError(503))
    assert not is_transient(HttpStatusError(404)) and not is_transient(HttpStatusError(499))
    assert is_transient(httpx.ConnectError("refused"))
    assert is_transient(httpx.ReadTimeout("slow"))
    assert is_transient(HostUnresolved("no such host"))
    assert not is_transient(httpx.UnsupportedProtocol("ftp"))
    assert not is_transient(ValueError("x"))


async def test_guard_refuses_a_private_address_unless_allowed(server: Server) -> None:
    url = server.url("/x")

    with pytest.raises(DataPlaneError) as caught:
        await guard(url, policy(allow_private_urls=False), FailureReason.INPUT_REFUSED, "input 'a'")
    assert caught.value.reason is FailureReason.INPUT_REFUSED
    assert caught.value.message.startswith("input 'a': ")

    await guard(url, policy(allow_private_urls=True), FailureReason.INPUT_REFUSED, "input 'a'")


@pytest.mark.parametrize("url", ["/objects/a", "objects/a", "ftp://host/a", "http:///a", "not a url"])
def test_require_store_url_refuses_non_absolute_http_links(url: str) -> None:
    with pytest.raises(DataPlaneError, match="GRID_STORAGE_URL") as caught:
        require_store_url(url, FailureReason.UPLOAD_FAILED, "logs")
    assert caught.value.reason is FailureReason.UPLOAD_FAILED


def test_require_store_url_accepts_absolute_links() -> None:
    require_store_url("http://host:8000/objects/a?sig=1", FailureReason.UPLOAD_FAILED, "logs")
    require_store_url("https://store.example/a", FailureReason.UPLOAD_FAILED, "logs")


def test_redact_drops_query_strings() -> None:
    assert redact("https://store.example:9000/b/k?X-Amz-Signature=secret") == "https://store.example:9000/b/k"
    assert redact(httpx.URL("http://h/p?token=t")) == "http://h/p"
    assert redact("/relative/path?sig=1") == "/relative/path"
    assert redact("http://user:secret@h/p?q=1") == "http://h/p"  # nor userinfo
