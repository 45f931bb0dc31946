"""429 in the SDK: retried after ``Retry-After`` a bounded number of times, then ``RateLimitedError``.

Against a stand-in facilitator (``httpx.MockTransport``): no server, and ``Retry-After: 0`` so
nothing sleeps. The real refusals are in tests/reliability/test_limits.py.
"""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from facilitator_sdk import ApiError, AsyncClient, Client, RateLimitedError
from facilitator_sdk._base import MAX_RETRY_WAIT_S, retry_after
from protocol.keys import Keypair
from protocol.requests import HEADER_NONCE

URL = "http://facilitator.test"
KEY = Keypair.generate()
REFUSAL = {"code": "rate_limited", "message": "too many requests", "errors": []}


def facilitator(refusals: int, retry_after: str | None = "0") -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """Answers 429 ``refusals`` times, then ``{"jobs": []}``; records every request."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= refusals:
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return httpx.Response(429, json=REFUSAL, headers=headers)
        return httpx.Response(200, json={"jobs": []})

    return httpx.MockTransport(handle), seen


def test_a_429_is_sent_again_freshly_signed_until_it_goes_through() -> None:
    transport, seen = facilitator(refusals=3)
    with Client(URL, KEY, transport=transport) as client:
        assert client.list_jobs() == []
    assert len(seen) == 4
    assert len({request.headers[HEADER_NONCE] for request in seen}) == 4  # never a replayed nonce


def test_any_method_is_retried_a_429_means_nothing_was_done() -> None:
    transport, seen = facilitator(refusals=1)
    with Client(URL, KEY, transport=transport) as client:
        client._request("POST", "/jobs/x/cancel")
    assert [request.method for request in seen] == ["POST", "POST"]


def test_past_its_retries_the_client_raises_rate_limited_error_with_retry_after() -> None:
    transport, seen = facilitator(refusals=10, retry_after="0")
    with (
        Client(URL, KEY, transport=transport, rate_limit_retries=2) as client,
        pytest.raises(RateLimitedError) as refused,
    ):
        client.list_jobs()
    assert len(seen) == 3
    error = refused.value
    assert isinstance(error, ApiError)
    assert (error.status, error.code, error.message, error.retry_after) == (429, "rate_limited", "too many requests", 0)
    assert str(error) == "429 rate_limited: too many requests"


def test_no_retries_when_turned_off() -> None:
    transport, seen = facilitator(refusals=1, retry_after="7")
    with (
        Client(URL, KEY, transport=transport, rate_limit_retries=0) as client,
        pytest.raises(RateLimitedError) as refused,
    ):
        client.list_jobs()
    assert (len(seen), refused.value.retry_after) == (1, 7)


def test_a_wait_longer_than_the_client_sleeps_raises_at_once() -> None:
    transport, seen = facilitator(refusals=1, retry_after=str(int(MAX_RETRY_WAIT_S) + 1))
    with Client(URL, KEY, transport=transport) as client:
        started = time.monotonic()
        with pytest.raises(RateLimitedError) as refused:
            client.list_jobs()
    assert len(seen) == 1 and time.monotonic() - started < 5
    assert refused.value.retry_after == MAX_RETRY_WAIT_S + 1


def test_other_refusals_are_not_retried() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503, text="Service Unavailable")

    with Client(URL, KEY, transport=httpx.MockTransport(handle)) as client, pytest.raises(ApiError) as refused:
        client.list_jobs()
    assert len(seen) == 1 and refused.value.status == 503
    assert not isinstance(refused.value, RateLimitedError)


async def test_the_async_client_retries_the_same_way() -> None:
    transport, seen = facilitator(refusals=2)
    async with AsyncClient(URL, KEY, transport=transport) as client:
        assert await client.list_jobs() == []
    assert len(seen) == 3
    transport, seen = facilitator(refusals=5)
    async with AsyncClient(URL, KEY, transport=transport, rate_limit_retries=1) as client:
        with pytest.raises(RateLimitedError):
            await client.list_jobs()
    assert len(seen) == 2


def test_a_negative_number_of_retries_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_limit_retries"):
        Client(URL, KEY, rate_limit_retries=-1)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("3", 3.0),
        ("0", 0.0),
        ("2.5", 2.5),
        ("-4", 0.0),
        ("soon", None),
        ("inf", None),
    ],
)
def test_retry_after_reads_delay_seconds(header: str | None, expected: float | None) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    assert retry_after(httpx.Response(429, headers=headers)) == expected


def test_retry_after_reads_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 60, usegmt=True)
    wait = retry_after(httpx.Response(429, headers={"Retry-After": when}))
    assert wait is not None and 50 < wait <= 60


def test_without_retry_after_the_client_backs_off_1_2_4_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("facilitator_sdk.client.time.sleep", slept.append)
    monkeypatch.setattr("facilitator_sdk._base.random.uniform", lambda low, high: 0.0)
    transport, _ = facilitator(refusals=3, retry_after=None)
    with Client(URL, KEY, transport=transport) as client:
        client.list_jobs()
    assert slept == [1.0, 2.0, 4.0]
