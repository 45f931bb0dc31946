"""The facilitator's registry (facilitator/registry/): backends, the signed snapshot, announcing, handshakes.

REST calls go through Django's test client with real signature headers (``SignedApi``);
validators dial the real routing over a ``WebsocketCommunicator``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.test import Client, override_settings

from facilitator.registry import (
    DatabaseRegistry,
    ReadOnlyRegistry,
    RegistryMisconfigured,
    StaticFileRegistry,
    admits_validator,
    create_registry,
    get_registry,
    seed_validators,
)
from facilitator.registry.models import Neuron, RegistryVersion
from node.identity import own_keypair
from protocol.errors import SignatureError
from protocol.handshake import ClientHandshake
from protocol.keys import Keypair
from protocol.registry import RegistrySnapshot, Role, verify_registry
from protocol.requests import HEADER_SIGNATURE, HEADER_TIMESTAMP

from .conftest import STRANGER, VALIDATOR, Dial, SignedApi, assert_error

MINER = Keypair.generate()
OTHER_MINER = Keypair.generate()
ANNOUNCE = "/registry/announce"


@pytest.fixture
def registry(db: None) -> DatabaseRegistry:
    registry = get_registry()
    assert isinstance(registry, DatabaseRegistry)
    return registry


@pytest.fixture
def miner_api() -> SignedApi:
    return SignedApi(MINER)


def fetch(etag: str = "") -> tuple[RegistrySnapshot, str]:
    response = Client().get("/api/v1/registry", headers={"If-None-Match": etag} if etag else {})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return RegistrySnapshot.model_validate_json(response.content), response["ETag"]


def announce(api: SignedApi, address: str = "ws://127.0.0.1:9001", role: str = "miner", **options: object):
    return api.post(ANNOUNCE, {"role": role, "address": address}, **options)


# -- the snapshot ----------------------------------------------------------------------------------


def test_the_snapshot_is_signed_by_the_facilitator_and_lists_every_neuron(registry: DatabaseRegistry) -> None:
    registry.register(VALIDATOR.hotkey, Role.VALIDATOR, stake=2.5)
    registry.register(MINER.hotkey, Role.MINER, address="ws://10.0.0.1:8001")
    snapshot, _ = fetch()
    verify_registry(snapshot, own_keypair().hotkey)
    assert snapshot.facilitator_hotkey == own_keypair().hotkey
    assert [(n.hotkey, n.role, n.stake, n.address, n.active) for n in snapshot.neurons] == [
        (VALIDATOR.hotkey, Role.VALIDATOR, 2.5, "", True),
        (MINER.hotkey, Role.MINER, 0.0, "ws://10.0.0.1:8001", True),
    ]
    assert snapshot.find(MINER.hotkey).validator_url == "ws://10.0.0.1:8001/ws/validator/"


def test_a_snapshot_altered_after_signing_does_not_verify(registry: DatabaseRegistry) -> None:
    registry.register(MINER.hotkey, Role.MINER, address="ws://10.0.0.1:8001")
    snapshot, _ = fetch()
    moved = snapshot.neurons[0].model_copy(update={"address": "ws://evil:1"})
    with pytest.raises(SignatureError):
        verify_registry(snapshot.model_copy(update={"neurons": [moved]}), own_keypair().hotkey)
    with pytest.raises(SignatureError) as wrong:
        verify_registry(snapshot, Keypair.generate().hotkey)
    assert wrong.value.code == "wrong_facilitator"


def test_the_version_grows_with_every_change_and_only_then(registry: DatabaseRegistry) -> None:
    versions = [fetch()[0].version]
    registry.register(MINER.hotkey, Role.MINER, address="ws://10.0.0.1:8001")
    versions.append(fetch()[0].version)
    registry.register(MINER.hotkey, Role.MINER, address="ws://10.0.0.1:8001")  # the same again: no change
    versions.append(fetch()[0].version)
    registry.register(MINER.hotkey, Role.MINER, address="ws://10.0.0.2:8001")
    versions.append(fetch()[0].version)
    registry.deactivate(MINER.hotkey)
    versions.append(fetch()[0].version)
    registry.remove(MINER.hotkey)
    versions.append(fetch()[0].version)
    assert versions[1] > versions[0]
    assert versions[2] == versions[1]
    assert versions[0] < versions[1] < versions[3] < versions[4] < versions[5]
    assert fetch()[0].neurons == []


def test_an_unchanged_registry_is_served_from_the_cache_and_304_to_its_etag(
    registry: DatabaseRegistry, django_assert_max_num_queries
) -> None:
    registry.register(MINER.hotkey, Role.MINER, address="ws://10.0.0.1:8001")
    first, etag = fetch()
    with django_assert_max_num_queries(1):  # the version, nothing else
        again, same_etag = fetch()
    assert again == first and same_etag == etag  # the same signing, not a new one
    response = Client().get("/api/v1/registry", headers={"If-None-Match": etag})
    assert response.status_code == 304 and response.content == b""
    registry.register(OTHER_MINER.hotkey, Role.MINER)
    newer, new_etag = fetch(etag)
    assert new_etag != etag and newer.version > first.version and newer.find(OTHER_MINER.hotkey) is not None


def test_the_registry_routes_refuse_other_methods_in_the_api_error_shape(registry: DatabaseRegistry) -> None:
    assert_error(Client().post("/api/v1/registry"), 405, "method_not_allowed")
    assert_error(Client().get("/api/v1/registry/announce"), 405, "method_not_allowed")


# -- announcing ------------------------------------------------------------------------------------


def test_an_unknown_miner_announcing_to_an_open_registry_is_registered_with_stake_0(
    registry: DatabaseRegistry, miner_api: SignedApi
) -> None:
    response = announce(miner_api, "ws://10.0.0.7:8001/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["neuron"] == {
        "hotkey": MINER.hotkey,
        "role": "miner",
        "stake": 0.0,
        "address": "ws://10.0.0.7:8001",
        "active": True,
    }
    assert body["version"] == RegistryVersion.current()
    row = Neuron.objects.get(hotkey=MINER.hotkey)
    assert (row.role, row.stake, row.address, row.active) == ("miner", 0.0, "ws://10.0.0.7:8001", True)


def test_a_registered_miner_announcing_a_new_address_keeps_its_stake(
    registry: DatabaseRegistry, miner_api: SignedApi
) -> None:
    registry.register(MINER.hotkey, Role.MINER, stake=7.0, address="ws://10.0.0.1:8001")
    assert announce(miner_api, "wss://miner.example:443").status_code == 200
    assert registry.get(MINER.hotkey).address == "wss://miner.example:443"
    assert registry.get(MINER.hotkey).stake == 7.0
    version = registry.version()
    assert announce(miner_api, "wss://miner.example:443").status_code == 200
    assert registry.version() == version, "announcing the same address again is no change"


@override_settings(FACILITATOR_REGISTRY_OPEN=False)
def test_an_unknown_miner_is_refused_by_a_closed_registry(registry: DatabaseRegistry, miner_api: SignedApi) -> None:
    assert_error(
        announce(miner_api),
        403,
        "not_registered",
        f"{MINER.hotkey} is not registered here, and this registry is closed",
    )
    assert not Neuron.objects.exists()
    registry.register(MINER.hotkey, Role.MINER)  # registered by the operator: may announce
    assert announce(miner_api).status_code == 200


def test_a_validator_hotkey_announcing_as_a_miner_is_a_conflict(registry: DatabaseRegistry) -> None:
    registry.register(VALIDATOR.hotkey, Role.VALIDATOR, stake=1.0)
    assert_error(
        announce(SignedApi(VALIDATOR)),
        409,
        "role_conflict",
        f"{VALIDATOR.hotkey} is registered as a validator; it cannot announce as a miner",
    )
    assert registry.get(VALIDATOR.hotkey).role is Role.VALIDATOR


def test_a_deactivated_miner_cannot_announce_its_way_back(registry: DatabaseRegistry, miner_api: SignedApi) -> None:
    registry.register(MINER.hotkey, Role.MINER, address="ws://10.0.0.1:8001")
    registry.deactivate(MINER.hotkey)
    assert_error(announce(miner_api, "ws://10.0.0.9:8001"), 403, "deactivated")
    assert registry.get(MINER.hotkey).address == "ws://10.0.0.1:8001"


def test_only_miners_announce_an_address(registry: DatabaseRegistry, miner_api: SignedApi) -> None:
    assert_error(
        announce(miner_api, role="validator"), 400, "invalid_role", "only miners announce an address, not validators"
    )
    assert not Neuron.objects.exists()


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://10.0.0.1:8001", "address: must be a ws:// or wss:// address with a host"),
        ("ws://", "address: must be a ws:// or wss:// address with a host"),
        ("ws://10.0.0.1 :8001", "address: cannot contain spaces or control characters"),
        ("ws://10.0.0.1:8001\n", "address: cannot contain spaces or control characters"),
        ("", "address: a miner announces the ws:// or wss:// root validators dial"),
    ],
)
def test_a_bad_address_is_refused_with_the_reason(
    registry: DatabaseRegistry, miner_api: SignedApi, address: str, message: str
) -> None:
    assert_error(announce(miner_api, address), 400, "invalid_address", message)
    assert not Neuron.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        ({"address": "ws://10.0.0.1:8001"}, "role"),
        ({"role": "miner"}, "address"),
        ({"role": "oracle", "address": "ws://10.0.0.1:8001"}, "role"),
        ({"role": "miner", "address": "ws://10.0.0.1:8001", "stake": 100}, "stake"),
        ({"role": "miner", "address": "ws://" + "a" * 600}, "address"),
        ([], "body"),
    ],
)
def test_a_malformed_body_is_refused_naming_the_field(
    registry: DatabaseRegistry, miner_api: SignedApi, body: object, field: str
) -> None:
    error = assert_error(miner_api.post(ANNOUNCE, body), 400, "invalid_request")
    assert error["message"].startswith("invalid announcement: ")
    assert field in {item["field"] for item in error["errors"]} or field == "body", error
    assert not Neuron.objects.exists()


def test_an_unsigned_announcement_is_401(registry: DatabaseRegistry, miner_api: SignedApi) -> None:
    target, raw, _ = miner_api.sign("POST", ANNOUNCE, body={"role": "miner", "address": "ws://10.0.0.1:8001"})
    assert_error(miner_api.send("POST", target, raw), 401, "missing_signature")
    assert not Neuron.objects.exists()


def test_an_announcement_signed_by_another_key_is_401(registry: DatabaseRegistry, miner_api: SignedApi) -> None:
    target, raw, headers = miner_api.sign("POST", ANNOUNCE, body={"role": "miner", "address": "ws://10.0.0.1:8001"})
    _, _, forged = miner_api.sign(
        "POST", ANNOUNCE, body={"role": "miner", "address": "ws://10.0.0.1:8001"}, keypair=STRANGER
    )
    assert_error(
        miner_api.send("POST", target, raw, {**headers, HEADER_SIGNATURE: forged[HEADER_SIGNATURE]}),
        401,
        "bad_signature",
    )
    assert not Neuron.objects.exists()


def test_an_announcement_whose_body_was_changed_after_signing_is_401(
    registry: DatabaseRegistry, miner_api: SignedApi
) -> None:
    target, _, headers = miner_api.sign("POST", ANNOUNCE, body={"role": "miner", "address": "ws://10.0.0.1:8001"})
    other = json.dumps({"role": "miner", "address": "ws://evil:1"}).encode()
    assert_error(miner_api.send("POST", target, other, headers), 401, "bad_signature")
    assert not Neuron.objects.exists()


def test_a_stale_announcement_is_401(registry: DatabaseRegistry, miner_api: SignedApi) -> None:
    response = announce(miner_api, now=time.time() - 3600)
    assert_error(response, 401, "stale_request")
    target, raw, headers = miner_api.sign("POST", ANNOUNCE, body={"role": "miner", "address": "ws://10.0.0.1:8001"})
    assert_error(miner_api.send("POST", target, raw, {**headers, HEADER_TIMESTAMP: "soon"}), 401, "stale_request")
    assert not Neuron.objects.exists()


def test_a_replayed_announcement_is_401(registry: DatabaseRegistry, miner_api: SignedApi) -> None:
    signed = miner_api.sign("POST", ANNOUNCE, body={"role": "miner", "address": "ws://10.0.0.1:8001"})
    assert miner_api.send("POST", *signed).status_code == 200
    registry.register(MINER.hotkey, Role.MINER, address="ws://10.0.0.2:8001")
    assert_error(miner_api.send("POST", *signed), 401, "replayed")
    assert registry.get(MINER.hotkey).address == "ws://10.0.0.2:8001"


@override_settings(FACILITATOR_CLIENT_HOTKEYS=["someone-else"])
def test_miners_announce_whatever_the_client_allow_list(registry: DatabaseRegistry, miner_api: SignedApi) -> None:
    assert announce(miner_api).status_code == 200


# -- the static backend ----------------------------------------------------------------------------


@pytest.fixture
def neurons_file(tmp_path: Path) -> Path:
    path = tmp_path / "neurons.json"
    path.write_text(
        json.dumps(
            [
                {"hotkey": VALIDATOR.hotkey, "role": "validator", "stake": 3.0},
                {"hotkey": MINER.hotkey, "role": "miner", "address": "ws://10.0.0.1:8001"},
            ]
        )
    )
    return path


@pytest.fixture
def static(neurons_file: Path, db: None) -> Iterator[StaticFileRegistry]:
    with override_settings(GRID_REGISTRY=f"static:{neurons_file}"):
        registry = get_registry()
        assert isinstance(registry, StaticFileRegistry)
        yield registry


def test_a_static_registry_serves_its_file_signed(static: StaticFileRegistry, neurons_file: Path) -> None:
    snapshot, _ = fetch()
    verify_registry(snapshot, own_keypair().hotkey)
    assert [(n.hotkey, n.role, n.stake) for n in snapshot.neurons] == [
        (VALIDATOR.hotkey, Role.VALIDATOR, 3.0),
        (MINER.hotkey, Role.MINER, 0.0),
    ]
    assert snapshot.version == neurons_file.stat().st_mtime_ns


def test_a_static_registry_follows_changes_to_its_file(static: StaticFileRegistry, neurons_file: Path) -> None:
    before, _ = fetch()
    neurons_file.write_text(json.dumps([{"hotkey": OTHER_MINER.hotkey, "role": "miner"}]))
    os.utime(neurons_file, ns=(before.version + 10**9, before.version + 10**9))
    after, _ = fetch()
    assert after.version > before.version
    assert [n.hotkey for n in after.neurons] == [OTHER_MINER.hotkey]


def test_a_static_file_broken_after_start_leaves_the_last_good_list(
    static: StaticFileRegistry, neurons_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before, _ = fetch()
    neurons_file.write_text("[{")
    os.utime(neurons_file, ns=(before.version + 10**9, before.version + 10**9))
    after, _ = fetch()
    assert after == before
    assert "cannot be used; keeping the previous list" in caplog.text


def test_a_static_registry_refuses_announcements_and_changes(static: StaticFileRegistry, miner_api: SignedApi) -> None:
    error = assert_error(announce(miner_api), 403, "read_only")
    assert error["message"] == (
        f"this facilitator's registry is read-only (<StaticFileRegistry {static.path}>): ask its operator to change it"
    )
    for change in (
        lambda: static.register(OTHER_MINER.hotkey, Role.MINER),
        lambda: static.deactivate(MINER.hotkey),
        lambda: static.remove(MINER.hotkey),
    ):
        with pytest.raises(ReadOnlyRegistry):
            change()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("static:", "GRID_REGISTRY: 'static:' needs a file, e.g. 'static:/etc/grid/neurons.json'"),
        ("databse", "GRID_REGISTRY: unknown backend 'databse'; did you mean 'database'?"),
        ("database:/x", "GRID_REGISTRY: only 'static:' takes a file, not 'database'"),
        (
            "static:/no/such/file.json",
            "GRID_REGISTRY: the static registry cannot start: "
            "registry file /no/such/file.json: No such file or directory",
        ),
        ({"BACKEND": "static", "OPTIONS": {"file": "x"}}, "GRID_REGISTRY: the static registry cannot start: "),
        ({"OPTIONS": {}}, "GRID_REGISTRY: BACKEND is missing"),
    ],
)
def test_a_bad_registry_setting_is_a_clear_error(setting: object, message: str) -> None:
    with pytest.raises(RegistryMisconfigured) as error:
        create_registry(setting)
    assert str(error.value).startswith(message)


def test_a_static_file_with_a_bad_entry_names_it(tmp_path: Path) -> None:
    path = tmp_path / "neurons.json"
    path.write_text(json.dumps([{"hotkey": MINER.hotkey, "role": "miner"}, {"hotkey": "zz", "role": "miner"}]))
    with pytest.raises(RegistryMisconfigured) as error:
        create_registry(f"static:{path}")
    assert f"registry file {path}, entry 1: hotkey: " in str(error.value)
    path.write_text(json.dumps([{"hotkey": MINER.hotkey, "role": "miner"}] * 2))
    with pytest.raises(RegistryMisconfigured, match=f"lists {MINER.hotkey} more than once"):
        create_registry(f"static:{path}")


# -- validators named by configuration, and the handshake ------------------------------------------


def test_startup_registers_the_configured_validators_with_their_stake(registry: DatabaseRegistry) -> None:
    registry.register(VALIDATOR.hotkey, Role.VALIDATOR, stake=9.0, active=False)
    registry.register(MINER.hotkey, Role.MINER)
    with override_settings(
        FACILITATOR_VALIDATOR_HOTKEYS=[VALIDATOR.hotkey, MINER.hotkey], FACILITATOR_VALIDATOR_STAKE=2.0
    ):
        assert seed_validators() == [MINER.hotkey]  # registered as a miner: left alone
    assert registry.get(VALIDATOR.hotkey) == registry.get(VALIDATOR.hotkey).model_copy(
        update={"stake": 2.0, "active": True}
    )
    assert registry.get(MINER.hotkey).role is Role.MINER


def test_a_static_registry_reports_configured_validators_it_lacks(static: StaticFileRegistry) -> None:
    with override_settings(FACILITATOR_VALIDATOR_HOTKEYS=[VALIDATOR.hotkey, STRANGER.hotkey]):
        assert seed_validators() == [STRANGER.hotkey]
        assert admits_validator(VALIDATOR.hotkey)
        assert not admits_validator(STRANGER.hotkey)
        assert not admits_validator(MINER.hotkey)


pytestmark_ws = pytest.mark.django_db(transaction=True)


async def refused(dial_validator: Dial, keypair: Keypair) -> tuple[int, str]:
    peer = await dial_validator(None)
    assert peer.challenge is not None
    await peer.send(ClientHandshake(keypair, "validator").receive_challenge(peer.challenge))
    return await peer.closed_with()


@pytestmark_ws
async def test_a_registered_active_validator_is_let_in(dial_validator: Dial) -> None:
    await database_sync_to_async(get_registry().register)(VALIDATOR.hotkey, Role.VALIDATOR, stake=1.0)
    validator = await dial_validator(VALIDATOR)
    await validator.expect_nothing()


@pytestmark_ws
async def test_an_unregistered_hotkey_is_closed_with_4403(dial_validator: Dial) -> None:
    assert await refused(dial_validator, STRANGER) == (4403, f"hotkey {STRANGER.hotkey} is not allowed as validator")


@pytestmark_ws
async def test_a_deactivated_validator_is_closed_with_4403_even_if_configured(dial_validator: Dial) -> None:
    registry = get_registry()
    await database_sync_to_async(registry.register)(VALIDATOR.hotkey, Role.VALIDATOR, active=False)
    with override_settings(FACILITATOR_VALIDATOR_HOTKEYS=[VALIDATOR.hotkey]):
        assert (await refused(dial_validator, VALIDATOR))[0] == 4403


@pytestmark_ws
async def test_a_miner_hotkey_is_closed_with_4403_at_the_validator_endpoint(dial_validator: Dial) -> None:
    await database_sync_to_async(get_registry().register)(MINER.hotkey, Role.MINER, address="ws://10.0.0.1:8001")
    assert (await refused(dial_validator, MINER))[0] == 4403


@pytestmark_ws
async def test_a_configured_validator_the_registry_has_not_seen_is_registered_when_it_connects(
    dial_validator: Dial,
) -> None:
    with override_settings(FACILITATOR_VALIDATOR_HOTKEYS=[VALIDATOR.hotkey], FACILITATOR_VALIDATOR_STAKE=4.0):
        validator = await dial_validator(VALIDATOR)
        await validator.expect_nothing()
    neuron = await database_sync_to_async(get_registry().get)(VALIDATOR.hotkey)
    assert (neuron.role, neuron.stake, neuron.active) == (Role.VALIDATOR, 4.0, True)
