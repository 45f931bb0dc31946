"""The miner's side of the registry (miner/registry.py, miner/tasks.py, the validator handshake).

The facilitator is the real one, in this process: the test settings install every app and route
the facilitator's URLs, and the miner's registry client talks to them through
``httpx.WSGITransport``. Validators dial the miner's real routing over a ``WebsocketCommunicator``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core import signals
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import override_settings

from facilitator.registry import get_registry as facilitator_registry
from miner import startup, tasks
from miner.registry import admits_validator, get_registry, sync
from node.identity import own_keypair
from node.registry_client import RegistryClient
from protocol.handshake import ClientHandshake
from protocol.keys import Keypair
from protocol.registry import Role

from .conftest import STRANGER, VALIDATOR, Dial

ADDRESS = "ws://127.0.0.1:18001"


@pytest.fixture
def facilitator_http() -> Iterator[httpx.Client]:
    """HTTP to the facilitator in this process, as Django's test client does it: the request's end
    must not close the test's database connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield httpx.Client(transport=httpx.WSGITransport(app=WSGIHandler()))
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def registry(db: None, tmp_path: Path, facilitator_http: httpx.Client) -> Iterator[RegistryClient]:
    """The miner configured to follow the in-process facilitator; the miner's key is ``own_keypair()``."""
    with override_settings(
        MINER_FACILITATOR_API="http://testserver",
        MINER_FACILITATOR_HOTKEY=own_keypair().hotkey,
        MINER_ADDRESS=ADDRESS,
        GRID_HOME=tmp_path,
    ):
        client = get_registry()
        assert client is not None
        client._http = facilitator_http
        yield client


def register_validator(active: bool = True) -> None:
    facilitator_registry().register(VALIDATOR.hotkey, Role.VALIDATOR, stake=1.0, active=active)


def test_sync_announces_the_miners_address_and_keeps_the_signed_registry(registry: RegistryClient) -> None:
    register_validator()
    snapshot = sync()
    me = facilitator_registry().get(own_keypair().hotkey)
    assert (me.role, me.address, me.stake, me.active) == (Role.MINER, ADDRESS, 0.0, True)
    assert snapshot is not None and snapshot.find(own_keypair().hotkey) == me
    assert registry.cache_path == Path(registry.cache_path.parent) / f"miner-{own_keypair().hotkey[:16]}.json"
    assert registry.cache_path.exists()


def test_the_periodic_task_returns_the_version_held(registry: RegistryClient) -> None:
    register_validator()
    assert tasks.sync_registry() == facilitator_registry().version()


def test_a_validator_active_in_the_synced_registry_is_admitted(registry: RegistryClient) -> None:
    assert not admits_validator(VALIDATOR.hotkey)
    register_validator()
    sync()
    assert admits_validator(VALIDATOR.hotkey)
    assert not admits_validator(STRANGER.hotkey)
    assert not admits_validator(own_keypair().hotkey), "a miner is not a validator"


def test_a_deactivated_validator_is_refused_after_the_next_sync(registry: RegistryClient) -> None:
    register_validator()
    sync()
    facilitator_registry().deactivate(VALIDATOR.hotkey)
    assert admits_validator(VALIDATOR.hotkey), "until the miner hears of it"
    sync()
    assert not admits_validator(VALIDATOR.hotkey)


@override_settings(FACILITATOR_REGISTRY_OPEN=False)
def test_a_closed_registry_refuses_the_announcement_but_the_registry_is_still_followed(
    registry: RegistryClient, caplog: pytest.LogCaptureFixture
) -> None:
    register_validator()
    sync()
    assert facilitator_registry().get(own_keypair().hotkey) is None
    assert "HTTP 403 not_registered" in caplog.text
    assert admits_validator(VALIDATOR.hotkey)


def test_without_a_facilitator_api_only_the_static_list_admits(db: None) -> None:
    assert get_registry() is None and sync() is None
    assert not admits_validator(VALIDATOR.hotkey)
    with override_settings(MINER_VALIDATOR_HOTKEYS=[VALIDATOR.hotkey]):
        assert admits_validator(VALIDATOR.hotkey)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"MINER_FACILITATOR_HOTKEY": ""}, "GRID_FACILITATOR_API is set but GRID_FACILITATOR_HOTKEY is not"),
        (
            {"MINER_FACILITATOR_API": "127.0.0.1:8000"},
            "GRID_FACILITATOR_API / GRID_FACILITATOR_HOTKEY: the facilitator API",
        ),
        (
            {"MINER_FACILITATOR_HOTKEY": "abc"},
            "GRID_FACILITATOR_API / GRID_FACILITATOR_HOTKEY: the facilitator's hotkey",
        ),
    ],
)
def test_a_registry_that_cannot_work_stops_the_miners_start(overrides: dict, message: str, tmp_path: Path) -> None:
    base = {
        "MINER_FACILITATOR_API": "http://127.0.0.1:8000",
        "MINER_FACILITATOR_HOTKEY": Keypair.generate().hotkey,
        "GRID_HOME": tmp_path,
        "GRID_PERIODIC": "celery",  # no beat thread from this test
    }
    with override_settings(**{**base, **overrides}), pytest.raises(ImproperlyConfigured) as error:
        startup.on_startup()
    assert str(error.value).startswith(message)


def test_a_miner_without_an_address_is_warned_at_startup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with (
        override_settings(
            MINER_FACILITATOR_API="http://127.0.0.1:8000",
            MINER_FACILITATOR_HOTKEY=Keypair.generate().hotkey,
            MINER_ADDRESS="",
            GRID_HOME=tmp_path,
            GRID_PERIODIC="celery",
        ),
        caplog.at_level(logging.WARNING),
    ):
        startup.on_startup()
    assert "GRID_MINER_ADDRESS is not set" in caplog.text


# -- the handshake ---------------------------------------------------------------------------------


async def refused(dial_validator: Dial, keypair: Keypair) -> tuple[int, str]:
    peer = await dial_validator(None)
    assert peer.challenge is not None
    await peer.send(ClientHandshake(keypair, "validator").receive_challenge(peer.challenge))
    return await peer.closed_with()


@pytest.fixture
def synced_with_validator(registry: RegistryClient) -> RegistryClient:
    register_validator()
    sync()
    return registry


@pytest.mark.django_db(transaction=True)
async def test_a_validator_from_the_registry_is_let_in(
    synced_with_validator: RegistryClient, dial_validator: Dial
) -> None:
    validator = await dial_validator(VALIDATOR)
    manifest = await validator.receive()
    assert manifest.type == "manifest"


@pytest.mark.django_db(transaction=True)
async def test_an_unregistered_hotkey_is_closed_with_4403(
    synced_with_validator: RegistryClient, dial_validator: Dial
) -> None:
    assert await refused(dial_validator, STRANGER) == (4403, f"hotkey {STRANGER.hotkey} is not allowed as validator")


@pytest.mark.django_db(transaction=True)
async def test_a_miner_hotkey_is_closed_with_4403(synced_with_validator: RegistryClient, dial_validator: Dial) -> None:
    other_miner = Keypair.generate()
    register = sync_to_async(facilitator_registry().register)
    await register(other_miner.hotkey, Role.MINER, address="ws://10.0.0.2:8001")
    await sync_to_async(sync)()
    assert (await refused(dial_validator, other_miner))[0] == 4403


def test_the_registry_client_is_built_again_when_its_settings_change(registry: RegistryClient) -> None:
    other = Keypair.generate().hotkey
    with override_settings(MINER_FACILITATOR_HOTKEY=other):
        assert get_registry().facilitator_hotkey == other
