"""Rate limits of the REST API (facilitator/api/middleware.py RateLimitMiddleware).

Each :class:`~tests.facilitator.conftest.SignedApi` has its own Django test client, hence its own
middleware instance and buckets: tests do not share limits. Time is real but the limits are so
low (1 request a second, bursts of 2) that the few milliseconds a test takes never refill them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings

from facilitator.api.middleware import RateLimitMiddleware
from protocol.keys import Keypair
from protocol.requests import HEADER_HOTKEY, HEADER_SIGNATURE

from .conftest import API, CLIENT, OTHER_CLIENT, SignedApi, assert_error

pytestmark = pytest.mark.django_db

LOW = {"GRID_API_RATE": 1, "GRID_API_BURST": 2, "GRID_API_ADDRESS_RATE": 1, "GRID_API_ADDRESS_BURST": 3}


@pytest.fixture(autouse=True)
def low_limits() -> Iterator[None]:
    with override_settings(**LOW):
        yield


def test_the_limiter_is_the_first_middleware() -> None:
    from django.conf import settings

    assert settings.MIDDLEWARE[0] == f"{RateLimitMiddleware.__module__}.RateLimitMiddleware"


def test_a_hotkey_past_its_burst_gets_429_rate_limited_with_retry_after(api: SignedApi) -> None:
    assert [api.get("/jobs").status_code for _ in range(2)] == [200, 200]
    refused = api.get("/jobs")
    body = assert_error(refused, 429, "rate_limited")
    assert refused["Retry-After"] == "1"
    assert body["message"] == (
        f"too many requests from hotkey {CLIENT.hotkey[:12]}…: more than 1 a second (bursts of 2); retry after 1 s"
    )


def test_another_hotkey_is_still_served(api: SignedApi) -> None:
    for _ in range(3):
        api.get("/jobs")
    assert api.get("/jobs", keypair=OTHER_CLIENT).status_code == 200


def test_every_method_and_route_counts(api: SignedApi) -> None:
    api.get("/jobs")
    api.post("/uploads", {"filename": "a.txt"})
    assert_error(api.post("/uploads", {"filename": "b.txt"}), 429, "rate_limited")


def test_unsigned_requests_are_limited_per_address(api: SignedApi) -> None:
    assert [api.send("GET", f"{API}/health").status_code for _ in range(3)] == [200] * 3
    body = assert_error(api.send("GET", f"{API}/health"), 429, "rate_limited")
    assert body["message"].startswith("too many requests from address 127.0.0.1 (unsigned requests): more than 1")
    assert api.get("/jobs").status_code == 200  # a signed request is counted for its hotkey instead


def test_a_forged_hotkey_header_spends_the_sender_s_address_not_the_victim_s_hotkey(api: SignedApi) -> None:
    """Naming someone else's hotkey without its signature cannot exhaust that hotkey's allowance."""
    victim = Keypair.generate()
    for _ in range(6):
        target, raw, headers = api.sign("GET", "/jobs")
        headers[HEADER_HOTKEY] = victim.hotkey
        api.send("GET", target, raw, headers)
    assert api.get("/jobs", keypair=victim).status_code == 200
    target, raw, headers = api.sign("GET", "/jobs")
    headers[HEADER_SIGNATURE] = "00" * 64
    body = assert_error(api.send("GET", target, raw, headers), 429, "rate_limited")
    assert "address 127.0.0.1" in body["message"]


def test_the_store_s_signed_urls_are_not_limited(api: SignedApi) -> None:
    for _ in range(10):
        response = api.send("GET", "/objects/some/key?expires=1&signature=x")
        assert response.status_code != 429, response.content


def test_a_rate_of_zero_turns_the_limit_off(api: SignedApi) -> None:
    with override_settings(GRID_API_RATE=0):
        assert {api.get("/jobs").status_code for _ in range(10)} == {200}


def test_new_settings_apply_to_the_next_request(api: SignedApi) -> None:
    for _ in range(3):
        api.get("/jobs")
    with override_settings(GRID_API_BURST=100):
        assert api.get("/jobs").status_code == 200  # a new limiter: a full bucket


def test_refusals_are_not_logged_one_by_one(api: SignedApi, caplog: pytest.LogCaptureFixture) -> None:
    """A flood of 429s must not become a flood of log lines (the access log has them)."""
    for _ in range(10):
        api.get("/jobs")
    assert not [record for record in caplog.records if record.name == "django.request"]
