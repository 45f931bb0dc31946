"""Helpers for the facilitator's tests: keys, signed jobs, signed REST calls, websocket peers.

REST calls go through Django's test client with real signature headers. Websocket peers talk to
the real routing (``facilitator.routing``) through channels' ``WebsocketCommunicator`` and run
the client side of the handshake by hand with :class:`~protocol.handshake.ClientHandshake`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.http import HttpResponse
from django.test import Client, override_settings
from pydantic import TypeAdapter

from facilitator import jobs
from facilitator.models import Job
from facilitator.routing import websocket_urlpatterns
from protocol.keys import Keypair
from protocol.messages import (
    FACILITATOR_TO_CLIENT,
    FACILITATOR_TO_VALIDATOR,
)
from protocol.requests import sign_request
from protocol.spec import JobSpec, new_job_id, sign_job
from tests.ws import Peer, close_all, open_peer

CLIENT = Keypair.generate()
OTHER_CLIENT = Keypair.generate()
VALIDATOR = Keypair.generate()
OTHER_VALIDATOR = Keypair.generate()
STRANGER = Keypair.generate()

# One knob for slow machines, as websockets' tests scale their time unit.

API = "/api/v1"
APP = URLRouter(websocket_urlpatterns)


# -- jobs ------------------------------------------------------------------------------------------


def signed_job(keypair: Keypair = CLIENT, job_id: str | None = None, **spec: Any) -> dict[str, Any]:
    """A create-job body: a valid spec (``echo hi`` unless overridden) signed by ``keypair``."""
    raw = JobSpec(command=spec.pop("command", ["echo", "hi"]), **spec).to_wire()
    return sign_raw_job(raw, keypair, job_id)


def sign_raw_job(raw: dict[str, Any], keypair: Keypair = CLIENT, job_id: str | None = None) -> dict[str, Any]:
    """A create-job body for any spec dict, valid or not, correctly signed."""
    job_id = job_id or new_job_id()
    return {"job_id": job_id, "spec": raw, "signature": sign_job(keypair, job_id, raw)}


def create_job(keypair: Keypair = CLIENT, **spec: Any) -> Job:
    """Store a job as the API would, without dispatching it."""
    body = signed_job(keypair, **spec)
    job, created = jobs.create_job(keypair.hotkey, body["job_id"], body["spec"], body["signature"])
    assert created
    return job


acreate_job = database_sync_to_async(create_job)


# -- REST ------------------------------------------------------------------------------------------


class SignedApi:
    """Signed calls to ``/api/v1/`` through Django's test client.

    The signature covers ``request.path``, the raw query string and the exact body bytes, so
    :meth:`sign` returns all three as they must be sent.
    """

    def __init__(self, keypair: Keypair = CLIENT) -> None:
        self.keypair = keypair
        self.http = Client()

    def sign(
        self,
        method: str,
        route: str,
        *,
        query: str = "",
        body: Any = None,
        keypair: Keypair | None = None,
        now: float | None = None,
    ) -> tuple[str, bytes, dict[str, str]]:
        path = API + route
        raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        headers = sign_request(keypair or self.keypair, method, path, query, raw, now=now)
        return (f"{path}?{query}" if query else path), raw, headers

    def send(self, method: str, target: str, raw: bytes = b"", headers: dict[str, str] | None = None) -> HttpResponse:
        return self.http.generic(method, target, raw, content_type="application/json", headers=headers or {})

    def call(self, method: str, route: str, **options: Any) -> HttpResponse:
        return self.send(method, *self.sign(method, route, **options))

    def get(self, route: str, **options: Any) -> HttpResponse:
        return self.call("GET", route, **options)

    def post(self, route: str, body: Any = None, **options: Any) -> HttpResponse:
        return self.call("POST", route, body=body, **options)


@pytest.fixture
def api() -> SignedApi:
    return SignedApi(CLIENT)


def assert_error(response: HttpResponse, status: int, code: str, message: str | None = None) -> dict[str, Any]:
    """Check the one error shape ``{code, message, errors}``; return the body."""
    body = response.json()
    assert response.status_code == status, body
    assert sorted(body) == ["code", "errors", "message"], body
    assert body["code"] == code, body
    assert isinstance(body["errors"], list)
    if message is not None:
        assert body["message"] == message
    return body


# -- websockets ------------------------------------------------------------------------------------


Dial = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def dial() -> AsyncIterator[Dial]:
    """Open a websocket; authenticate with ``keypair`` as ``role`` unless ``keypair`` is None."""
    opened: list[WebsocketCommunicator] = []

    async def open_(path: str, keypair: Keypair | None, role: str, receives: TypeAdapter[Any]) -> Peer:
        return await open_peer(APP, path, keypair, role, receives, opened)

    yield open_
    await close_all(opened)


@pytest.fixture
def dial_validator(dial: Dial) -> Dial:
    async def open_(keypair: Keypair | None = VALIDATOR, role: str = "validator") -> Peer:
        return await dial("/ws/validator/", keypair, role, FACILITATOR_TO_VALIDATOR)

    return open_


@pytest.fixture
def dial_client(dial: Dial) -> Dial:
    async def open_(keypair: Keypair | None = CLIENT, role: str = "client") -> Peer:
        return await dial("/ws/client/", keypair, role, FACILITATOR_TO_CLIENT)

    return open_


@pytest.fixture
def validators_allowed() -> Iterator[None]:
    """``VALIDATOR`` and ``OTHER_VALIDATOR`` may connect; redelivery is out of the way (60 s)."""
    with override_settings(
        FACILITATOR_VALIDATOR_HOTKEYS=[VALIDATOR.hotkey, OTHER_VALIDATOR.hotkey], FACILITATOR_REDELIVER_S=60.0
    ):
        yield


@pytest.fixture(autouse=True)
def own_channel_layer() -> Iterator[None]:
    """A fresh channel layer per test: a Redis layer's locks belong to the event loop that made them."""
    with override_settings(CHANNEL_LAYERS=settings.CHANNEL_LAYERS):
        yield
