"""The validator's side of the registry (validator/registry.py, validator/tasks.py, the connector following it).

The facilitator is the real one in this process (``httpx.WSGITransport`` to its views) or a
stand-in serving hand-made snapshots; the connector is real, its miner connections dial ports
where nothing listens (what they are connected to is the integration tests' business).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from django.core import signals
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import CommandError, call_command
from django.db import close_old_connections
from django.test import override_settings

from facilitator.registry import get_registry as facilitator_registry
from grid.local import free_port
from node.identity import own_keypair
from node.registry_client import RegistryClient
from protocol.keys import Keypair
from protocol.registry import Neuron, RegistrySnapshot, Role, sign_registry
from tests.ws import WAIT_S
from validator import tasks
from validator.connector import Connector
from validator.registry import MinerDirectory, get_registry, registered_miners, sync

FACILITATOR = Keypair.generate()
VALIDATOR = Keypair.generate()
MINERS = [Keypair.generate() for _ in range(3)]


def nowhere() -> str:
    """A ws root where nothing listens (dialling it fails fast, then backs off)."""
    return f"ws://127.0.0.1:{free_port()}"


def miner(index: int, address: str, active: bool = True) -> Neuron:
    return Neuron(hotkey=MINERS[index].hotkey, role=Role.MINER, address=address, active=active)


def signed(version: int, *neurons: Neuron) -> RegistrySnapshot:
    snapshot = RegistrySnapshot(
        version=version, issued_at=time.time(), facilitator_hotkey=FACILITATOR.hotkey, neurons=list(neurons)
    )
    return sign_registry(FACILITATOR, snapshot)


@pytest.fixture
def client(tmp_path: Path) -> RegistryClient:
    """A registry client whose facilitator is never asked: tests hand it snapshots with ``accept``."""
    refuse = httpx.MockTransport(lambda request: httpx.Response(503, json={"code": "down", "message": "down"}))
    return RegistryClient(
        "http://facilitator.test", FACILITATOR.hotkey, tmp_path / "registry.json", http=httpx.Client(transport=refuse)
    )


@pytest.fixture
async def connector(client: RegistryClient, tmp_path: Path) -> AsyncIterator[Connector]:
    connector = Connector(
        VALIDATOR,
        nowhere() + "/ws/validator/",
        FACILITATOR.hotkey,
        [],
        registry=client,
        registry_interval=60.0,
        status_path=str(tmp_path / "status.json"),
    )
    yield connector
    for hotkey in [miner.hotkey for miner in connector.miners]:
        await connector.drop_miner(hotkey)


def urls(connector: Connector) -> dict[str, str]:
    return {miner.hotkey: miner.client.url for miner in connector.miners}


def test_the_miners_to_dial_are_the_active_ones_with_an_address() -> None:
    snapshot = signed(
        1,
        miner(0, "ws://10.0.0.1:8001/"),
        miner(1, "ws://10.0.0.2:8001", active=False),
        Neuron(hotkey=MINERS[2].hotkey, role=Role.MINER),  # registered, never announced
        Neuron(hotkey=VALIDATOR.hotkey, role=Role.VALIDATOR, stake=1.0),
    )
    assert registered_miners(snapshot) == {MINERS[0].hotkey: "ws://10.0.0.1:8001/ws/validator/"}


async def test_the_connector_dials_every_registered_miner_and_hangs_up_on_those_that_leave(
    connector: Connector, client: RegistryClient, tmp_path: Path
) -> None:
    directory = connector.directory
    assert isinstance(directory, MinerDirectory)
    first, second, third = nowhere(), nowhere(), nowhere()
    await directory.apply(signed(1, miner(0, first), miner(1, second)))
    assert urls(connector) == {MINERS[0].hotkey: f"{first}/ws/validator/", MINERS[1].hotkey: f"{second}/ws/validator/"}
    kept = connector.miners[0]
    # Miner 1 deactivated, miner 2 appears: miner 0's connection is left alone.
    await directory.apply(signed(2, miner(0, first), miner(1, second, active=False), miner(2, third)))
    assert urls(connector) == {MINERS[0].hotkey: f"{first}/ws/validator/", MINERS[2].hotkey: f"{third}/ws/validator/"}
    assert connector.miners[0] is kept
    assert set(connector._clients) == {MINERS[0].hotkey, MINERS[2].hotkey}
    # Miner 0 moves: a new connection to the new address; miner 2 leaves the registry.
    moved = nowhere()
    await directory.apply(signed(3, miner(0, moved)))
    assert urls(connector) == {MINERS[0].hotkey: f"{moved}/ws/validator/"}
    assert connector.miners[0] is not kept
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["miners"] == {MINERS[0].hotkey: False} and status["facilitator"] is False
    assert status["hotkey"] == VALIDATOR.hotkey and directory.version == 3


async def test_a_static_miner_the_registry_does_not_list_is_hung_up_on(client: RegistryClient) -> None:
    listed = nowhere()
    connector = Connector(
        VALIDATOR,
        nowhere() + "/ws/validator/",
        FACILITATOR.hotkey,
        [f"{MINERS[1].hotkey}@{nowhere()}/ws/validator/"],
        registry=client,
    )
    await connector.directory.apply(signed(1, miner(0, listed)))
    assert urls(connector) == {MINERS[0].hotkey: f"{listed}/ws/validator/"}
    await connector.drop_miner(MINERS[0].hotkey)


async def test_a_tampered_snapshot_changes_nothing(
    connector: Connector, client: RegistryClient, caplog: pytest.LogCaptureFixture
) -> None:
    address = nowhere()
    good = signed(1, miner(0, address))
    client.accept(good)
    await connector.directory.first_snapshot()
    forged = signed(2, miner(0, address)).model_copy(update={"neurons": [miner(0, address), miner(1, "ws://evil:1")]})
    refused = httpx.MockTransport(lambda request: httpx.Response(200, content=forged.model_dump_json()))
    client._http = httpx.Client(transport=refused)
    assert await asyncio.to_thread(client.sync) == good
    assert "refused, keeping the previous one: signature does not verify" in caplog.text
    await connector.directory.apply(client.current())
    assert list(urls(connector)) == [MINERS[0].hotkey]


async def test_the_connector_waits_for_the_first_snapshot_and_wakes_as_soon_as_a_sync_brings_it(
    connector: Connector, client: RegistryClient
) -> None:
    """The interval is a minute: only the sync's own signal can wake the directory this soon."""
    address = nowhere()
    waiting = asyncio.create_task(connector.directory.first_snapshot())
    await asyncio.sleep(0)
    assert not waiting.done() and connector.miners == []
    threading.Thread(target=client.accept, args=(signed(1, miner(0, address)),)).start()  # the beat thread
    snapshot = await asyncio.wait_for(waiting, WAIT_S)
    assert snapshot.version == 1 and list(urls(connector)) == [MINERS[0].hotkey]


async def test_a_snapshot_another_process_synced_is_followed(client: RegistryClient, tmp_path: Path) -> None:
    """With Celery running the sync, the worker's file is what the connector reads."""
    connector = Connector(
        VALIDATOR, nowhere() + "/ws/validator/", FACILITATOR.hotkey, [], registry=client, registry_interval=0.05
    )
    following = asyncio.create_task(connector.directory.run())
    worker = RegistryClient("http://facilitator.test", FACILITATOR.hotkey, client.cache_path)
    worker.accept(signed(1, miner(0, nowhere())))
    try:
        async with asyncio.timeout(WAIT_S):
            while not connector.miners:
                await asyncio.sleep(0.01)
    finally:
        following.cancel()
        for hotkey in list(urls(connector)):
            await connector.drop_miner(hotkey)
    assert connector.directory.version == 1


# -- against the facilitator in this process -------------------------------------------------------


@pytest.fixture
def facilitator_http() -> Iterator[httpx.Client]:
    """As Django's test client does it: the request's end must not close the test's database connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield httpx.Client(transport=httpx.WSGITransport(app=WSGIHandler()))
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def test_sync_keeps_the_facilitators_signed_registry(db: None, tmp_path: Path, facilitator_http: httpx.Client) -> None:
    facilitator_registry().register(MINERS[0].hotkey, Role.MINER, address="ws://10.0.0.1:8001")
    with override_settings(
        VALIDATOR_FACILITATOR_API="http://testserver",
        VALIDATOR_FACILITATOR_HOTKEY=own_keypair().hotkey,
        GRID_HOME=tmp_path,
    ):
        registry = get_registry()
        registry._http = facilitator_http
        snapshot = sync()
        assert tasks.sync_registry() == snapshot.version == facilitator_registry().version()
        assert registered_miners(snapshot) == {MINERS[0].hotkey: "ws://10.0.0.1:8001/ws/validator/"}
        assert registry.cache_path == tmp_path / "registry" / f"validator-{own_keypair().hotkey[:16]}.json"
    assert get_registry() is None and sync() is None  # no facilitator API: the static list


def test_a_facilitator_api_without_its_hotkey_stops_the_connector_at_once(tmp_path: Path) -> None:
    with override_settings(VALIDATOR_FACILITATOR_API="http://127.0.0.1:8000", VALIDATOR_FACILITATOR_HOTKEY=None):
        with pytest.raises(ImproperlyConfigured):
            get_registry()
        with pytest.raises(CommandError, match="GRID_FACILITATOR_API is set but GRID_FACILITATOR_HOTKEY is not"):
            call_command("run_connector")
