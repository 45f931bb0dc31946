"""Neurons, signed registry snapshots and static registry files (protocol/registry.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from protocol.errors import SignatureError
from protocol.keys import Keypair
from protocol.registry import (
    REGISTRY_PURPOSE,
    Neuron,
    RegistrySnapshot,
    Role,
    load_static_registry,
    sign_registry,
    verify_registry,
)

FACILITATOR, OTHER = Keypair.generate(), Keypair.generate()
VALIDATOR_1, VALIDATOR_2, MINER_1, MINER_2, MINER_3 = (Keypair.generate().hotkey for _ in range(5))


def neurons() -> list[Neuron]:
    return [
        Neuron(hotkey=VALIDATOR_1, role=Role.VALIDATOR, stake=1000.0),
        Neuron(hotkey=VALIDATOR_2, role=Role.VALIDATOR, stake=10.0, active=False),
        Neuron(hotkey=MINER_1, role=Role.MINER, address="wss://miner-1.example:8443"),
        Neuron(hotkey=MINER_2, role=Role.MINER, address="ws://10.0.0.2:8000/", active=False),
        Neuron(hotkey=MINER_3, role=Role.MINER, address="ws://[::1]:9000", stake=5.5),
    ]


def snapshot(**changes: Any) -> RegistrySnapshot:
    fields: dict[str, Any] = {
        "version": 7,
        "issued_at": 1_700_000_000.5,
        "facilitator_hotkey": FACILITATOR.hotkey,
        "neurons": neurons(),
    }
    fields.update(changes)
    return RegistrySnapshot(**fields)


def code_of(snapshot_: RegistrySnapshot, facilitator_hotkey: str = FACILITATOR.hotkey) -> str:
    with pytest.raises(SignatureError) as info:
        verify_registry(snapshot_, facilitator_hotkey)
    return info.value.code


def replace_neuron(index: int, **changes: Any) -> list[Neuron]:
    listed = neurons()
    listed[index] = listed[index].model_copy(update=changes)
    return listed


# -- signing ---------------------------------------------------------------------------------------


def test_a_signed_snapshot_verifies() -> None:
    signed = sign_registry(FACILITATOR, snapshot())
    assert signed.signature == FACILITATOR.sign(REGISTRY_PURPOSE, snapshot().signed_fields())
    assert "signature" not in signed.signed_fields()
    verify_registry(signed, FACILITATOR.hotkey)


def test_an_empty_registry_verifies() -> None:
    verify_registry(sign_registry(FACILITATOR, snapshot(neurons=[], version=0)), FACILITATOR.hotkey)


def test_a_snapshot_survives_json_and_still_verifies() -> None:
    signed = sign_registry(FACILITATOR, snapshot())
    again = RegistrySnapshot.model_validate_json(signed.model_dump_json())
    assert again == signed
    verify_registry(again, FACILITATOR.hotkey)
    data = json.loads(signed.model_dump_json())
    data["neurons"] = [dict(reversed(list(entry.items()))) for entry in data["neurons"]]
    verify_registry(RegistrySnapshot.model_validate_json(json.dumps(data, indent=1)), FACILITATOR.hotkey)


def test_the_facilitator_signs_only_a_snapshot_that_names_it() -> None:
    with pytest.raises(ValueError, match="facilitator it names"):
        sign_registry(OTHER, snapshot())


def test_an_unsigned_snapshot_is_refused() -> None:
    assert code_of(snapshot()) == "missing_signature"


def test_a_snapshot_of_another_facilitator_is_refused() -> None:
    signed = sign_registry(FACILITATOR, snapshot())
    assert code_of(signed, OTHER.hotkey) == "wrong_facilitator"
    theirs = sign_registry(OTHER, snapshot(facilitator_hotkey=OTHER.hotkey))
    verify_registry(theirs, OTHER.hotkey)
    assert code_of(theirs) == "wrong_facilitator"


def test_a_snapshot_relabelled_for_another_facilitator_is_refused() -> None:
    signed = sign_registry(FACILITATOR, snapshot())
    assert code_of(signed.model_copy(update={"facilitator_hotkey": OTHER.hotkey}), OTHER.hotkey) == "bad_signature"


def test_a_snapshot_signed_by_another_key_or_for_another_purpose_is_refused() -> None:
    unsigned = snapshot()
    by_other = unsigned.model_copy(update={"signature": OTHER.sign(REGISTRY_PURPOSE, unsigned.signed_fields())})
    assert code_of(by_other) == "bad_signature"
    for_scores = unsigned.model_copy(update={"signature": FACILITATOR.sign("scores", unsigned.signed_fields())})
    assert code_of(for_scores) == "bad_signature"
    assert code_of(unsigned.model_copy(update={"signature": "00" * 64})) == "bad_signature"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"version": 8}, id="version"),
        pytest.param({"issued_at": 1_700_000_001.0}, id="issued-at"),
        pytest.param({"neurons": replace_neuron(0, stake=1000.5)}, id="stake"),
        pytest.param({"neurons": replace_neuron(2, address="wss://attacker.example:8443")}, id="address"),
        pytest.param({"neurons": replace_neuron(2, role=Role.VALIDATOR)}, id="role"),
        pytest.param({"neurons": replace_neuron(1, active=True)}, id="reactivated"),
        pytest.param({"neurons": replace_neuron(2, active=False)}, id="deactivated"),
        pytest.param({"neurons": replace_neuron(2, hotkey=OTHER.hotkey)}, id="hotkey"),
        pytest.param({"neurons": neurons()[1:]}, id="neuron-removed"),
        pytest.param(
            {"neurons": [*neurons(), Neuron(hotkey=OTHER.hotkey, role=Role.MINER, address="ws://x:1")]},
            id="neuron-added",
        ),
        pytest.param({"neurons": list(reversed(neurons()))}, id="neurons-reordered"),
    ],
)
def test_a_snapshot_altered_after_signing_is_refused(change: dict[str, Any]) -> None:
    signed = sign_registry(FACILITATOR, snapshot())
    assert code_of(signed.model_copy(update=change)) == "bad_signature"


# -- neurons ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        ("", ""),
        ("ws://host:8000", "ws://host:8000"),
        ("wss://host.example", "wss://host.example"),
        ("ws://host:8000/", "ws://host:8000"),
        ("wss://host:8000///", "wss://host:8000"),
        ("ws://host:8000/prefix/", "ws://host:8000/prefix"),
    ],
)
def test_a_neuron_address_is_a_websocket_root_without_trailing_slash(address: str, stored: str) -> None:
    neuron = Neuron(hotkey=MINER_1, role=Role.MINER, address=address)
    assert neuron.address == stored
    assert Neuron.model_validate_json(neuron.model_dump_json()) == neuron


@pytest.mark.parametrize(
    "address",
    [
        "http://host:8000",
        "https://host:8000",
        "host:8000",
        "WS://host:8000",
        "ws:/host",
        " ws://host:8000",
        "ws://host :8000",
        "ws://host:8000 ",
        "ws://host:8000\t",
        "ws://host:8000\n",
        "ws://ho\x00st",
        "ws://" + "h" * 508,
    ],
)
def test_a_neuron_refuses_a_bad_address(address: str) -> None:
    with pytest.raises(ValidationError):
        Neuron(hotkey=MINER_1, role=Role.MINER, address=address)


def test_the_longest_address_is_accepted() -> None:
    address = "ws://" + "h" * 507
    assert len(address) == 512
    assert Neuron(hotkey=MINER_1, role=Role.MINER, address=address).address == address


@pytest.mark.parametrize("address", ["ws://", "wss://", "ws:///"])
def test_an_accepted_address_survives_json(address: str) -> None:
    try:
        neuron = Neuron(hotkey=MINER_1, role=Role.MINER, address=address)
    except ValidationError:
        return  # refusing an address without a host is fine too
    assert Neuron.model_validate_json(neuron.model_dump_json()) == neuron


@pytest.mark.parametrize("char", ["\x7f", "\x85"], ids=["DEL", "NEL"])
def test_a_neuron_refuses_any_control_character(char: str) -> None:
    with pytest.raises(ValidationError):
        Neuron(hotkey=MINER_1, role=Role.MINER, address=f"ws://ho{char}st:8000")


def test_the_validator_url_is_under_the_miner_root() -> None:
    assert Neuron(hotkey=MINER_1, role=Role.MINER, address="ws://h:8000/").validator_url == "ws://h:8000/ws/validator/"
    assert Neuron(hotkey=MINER_1, role=Role.MINER, address="wss://h").validator_url == "wss://h/ws/validator/"


def test_neuron_defaults() -> None:
    neuron = Neuron(hotkey=VALIDATOR_1, role="validator")
    assert (neuron.role, neuron.stake, neuron.address, neuron.active) == (Role.VALIDATOR, 0.0, "", True)


@pytest.mark.parametrize(
    "change",
    [
        {"hotkey": "AB" * 32},
        {"hotkey": "ab" * 31},
        {"hotkey": "ab" * 33},
        {"hotkey": "zz" * 32},
        {"role": "client"},
        {"stake": -1.0},
        {"stake": float("nan")},
        {"nickname": "x"},
    ],
)
def test_a_neuron_refuses_malformed_fields(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Neuron.model_validate({"hotkey": MINER_1, "role": "miner", **change})


@pytest.mark.parametrize(
    "change",
    [
        {"version": -1},
        {"facilitator_hotkey": "AB" * 32},
        {"signature": "ab" * 63},
        {"signature": "AB" * 64},
        {"extra": 1},
    ],
)
def test_a_snapshot_refuses_malformed_fields(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        snapshot(**change)


# -- lookups ---------------------------------------------------------------------------------------


def test_of_role_lists_the_active_neurons_of_a_role_in_order() -> None:
    registry = snapshot()
    assert [n.hotkey for n in registry.of_role(Role.VALIDATOR)] == [VALIDATOR_1]
    assert [n.hotkey for n in registry.of_role(Role.MINER)] == [MINER_1, MINER_3]
    assert snapshot(neurons=[]).of_role(Role.MINER) == []


def test_find_by_hotkey_and_role() -> None:
    registry = snapshot()
    found = registry.find(MINER_1)
    assert found is not None and found.address == "wss://miner-1.example:8443"
    assert registry.find(MINER_1, Role.MINER) == found
    assert registry.find(MINER_1, Role.VALIDATOR) is None
    assert registry.find(OTHER.hotkey) is None
    # find does not filter on activity: the caller sees the neuron is inactive.
    inactive = registry.find(MINER_2)
    assert inactive is not None and not inactive.active


def test_find_tells_apart_one_hotkey_in_two_roles() -> None:
    registry = snapshot(
        neurons=[
            Neuron(hotkey=OTHER.hotkey, role=Role.VALIDATOR, stake=3.0),
            Neuron(hotkey=OTHER.hotkey, role=Role.MINER, address="ws://both:1"),
        ]
    )
    assert registry.find(OTHER.hotkey, Role.MINER).address == "ws://both:1"  # type: ignore[union-attr]
    assert registry.find(OTHER.hotkey, Role.VALIDATOR).stake == 3.0  # type: ignore[union-attr]
    assert registry.find(OTHER.hotkey).role is Role.VALIDATOR  # type: ignore[union-attr]


# -- static registry files -------------------------------------------------------------------------


def write(tmp_path: Path, content: Any, *, raw: bool = False) -> Path:
    path = tmp_path / "registry.json"
    path.write_text(content if raw else json.dumps(content))
    return path


def test_a_static_registry_file_loads_in_order_with_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"hotkey": VALIDATOR_1, "role": "validator", "stake": 10},
            {"hotkey": MINER_1, "role": "miner", "address": "ws://127.0.0.1:8000/"},
            {"hotkey": MINER_2, "role": "miner", "address": "wss://m2", "stake": 1.5, "active": False},
        ],
    )
    loaded = load_static_registry(path)
    assert loaded == load_static_registry(str(path))
    assert [n.hotkey for n in loaded] == [VALIDATOR_1, MINER_1, MINER_2]
    assert loaded[0] == Neuron(hotkey=VALIDATOR_1, role=Role.VALIDATOR, stake=10.0, address="", active=True)
    assert loaded[1].address == "ws://127.0.0.1:8000"
    assert loaded[1].validator_url == "ws://127.0.0.1:8000/ws/validator/"
    assert loaded[2].stake == 1.5 and not loaded[2].active


def test_an_empty_static_registry_is_empty(tmp_path: Path) -> None:
    assert load_static_registry(write(tmp_path, [])) == []


def test_a_missing_registry_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ValueError, match="No such file") as info:
        load_static_registry(path)
    assert str(path) in str(info.value)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="registry file"):
        load_static_registry(tmp_path)


@pytest.mark.parametrize("content", ["", "not json", "[{]", "{'hotkey': 1}"])
def test_a_registry_file_that_is_not_json_is_refused(tmp_path: Path, content: str) -> None:
    with pytest.raises(ValueError, match="is not JSON"):
        load_static_registry(write(tmp_path, content, raw=True))


@pytest.mark.parametrize("content", [{"neurons": []}, "neurons", 3, None])
def test_a_registry_file_that_is_not_a_list_is_refused(tmp_path: Path, content: Any) -> None:
    with pytest.raises(ValueError, match="must hold a JSON list"):
        load_static_registry(write(tmp_path, content))


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"hotkey": "nope", "role": "miner"}, "hotkey"),
        ({"role": "miner"}, "hotkey"),
        ({"hotkey": MINER_3}, "role"),
        ({"hotkey": MINER_3, "role": "overlord"}, "role"),
        ({"hotkey": MINER_3, "role": "miner", "address": "http://m3:80"}, "address"),
        ({"hotkey": MINER_3, "role": "miner", "address": "ws://m 3"}, "address"),
        ({"hotkey": MINER_3, "role": "miner", "stake": -2}, "stake"),
        ({"hotkey": MINER_3, "role": "miner", "stake": "lots"}, "stake"),
        ({"hotkey": MINER_3, "role": "miner", "nickname": "m3"}, "nickname"),
    ],
)
def test_a_bad_entry_is_named_by_index_and_field(tmp_path: Path, bad: dict[str, Any], where: str) -> None:
    good = [{"hotkey": VALIDATOR_1, "role": "validator"}, {"hotkey": MINER_1, "role": "miner", "address": "ws://m1"}]
    path = write(tmp_path, [*good, bad])
    with pytest.raises(ValueError, match=f"entry 2: {where}: ") as info:
        load_static_registry(path)
    assert str(path) in str(info.value)


def test_an_entry_that_is_not_an_object_is_named_by_index(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="entry 1"):
        load_static_registry(write(tmp_path, [{"hotkey": MINER_1, "role": "miner"}, "just a string"]))


@pytest.mark.parametrize(
    ("field", "value"),
    [("issued_at", float("nan")), ("issued_at", float("inf")), ("stake", float("inf"))],
    ids=["issued_at=nan", "issued_at=inf", "stake=inf"],
)
def test_a_snapshot_with_a_non_finite_number_is_refused_as_a_model_or_signature(field: str, value: float) -> None:
    data = json.loads(sign_registry(FACILITATOR, snapshot()).model_dump_json())
    if field == "stake":
        data["neurons"][0]["stake"] = value
    else:
        data[field] = value
    try:
        received = RegistrySnapshot.model_validate_json(json.dumps(data))  # json.dumps writes NaN / Infinity
    except ValidationError:
        return
    with pytest.raises(SignatureError):
        verify_registry(received, FACILITATOR.hotkey)
