"""Score sheets signed by validators (protocol/scores.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from protocol.errors import SignatureError
from protocol.keys import Keypair
from protocol.scores import SCORES_PURPOSE, ScoreSheet, sign_scores, verify_scores

VALIDATOR, OTHER = Keypair.generate(), Keypair.generate()
MINER_1, MINER_2 = Keypair.generate().hotkey, Keypair.generate().hotkey


def sheet(**changes: Any) -> ScoreSheet:
    fields: dict[str, Any] = {
        "validator_hotkey": VALIDATOR.hotkey,
        "at": 1_700_000_000.5,
        "window_s": 3600.0,
        "scores": {MINER_1: {"cpu.small": 12.0, "gpu.large": 3.5}, MINER_2: {"cpu.small": 0.25}},
    }
    fields.update(changes)
    return ScoreSheet(**fields)


def code_of(sheet_: ScoreSheet, validator_hotkey: str = VALIDATOR.hotkey) -> str:
    with pytest.raises(SignatureError) as info:
        verify_scores(sheet_, validator_hotkey)
    return info.value.code


def test_a_signed_sheet_verifies() -> None:
    signed = sign_scores(VALIDATOR, sheet())
    assert signed.signature == VALIDATOR.sign(SCORES_PURPOSE, sheet().signed_fields())
    assert "signature" not in signed.signed_fields()
    verify_scores(signed, VALIDATOR.hotkey)


def test_an_empty_sheet_verifies() -> None:
    verify_scores(sign_scores(VALIDATOR, sheet(scores={})), VALIDATOR.hotkey)


def test_a_sheet_survives_json_in_any_key_order() -> None:
    signed = sign_scores(VALIDATOR, sheet())
    again = ScoreSheet.model_validate_json(signed.model_dump_json())
    assert again == signed
    verify_scores(again, VALIDATOR.hotkey)
    data = json.loads(signed.model_dump_json())
    data["scores"] = {
        miner: dict(reversed(list(classes.items()))) for miner, classes in reversed(data["scores"].items())
    }
    verify_scores(ScoreSheet.model_validate_json(json.dumps(data, indent=2)), VALIDATOR.hotkey)


def test_integral_scores_verify_after_json() -> None:
    signed = sign_scores(VALIDATOR, sheet(scores={MINER_1: {"cpu.small": 4}}, at=1_700_000_000, window_s=60))
    verify_scores(ScoreSheet.model_validate_json(signed.model_dump_json()), VALIDATOR.hotkey)
    data = json.loads(signed.model_dump_json())
    data["scores"][MINER_1]["cpu.small"] = 4  # written as an int by another serialiser
    verify_scores(ScoreSheet.model_validate(data), VALIDATOR.hotkey)


def test_the_validator_signs_only_a_sheet_that_names_it() -> None:
    with pytest.raises(ValueError, match="validator it names"):
        sign_scores(OTHER, sheet())


def test_an_unsigned_sheet_is_refused() -> None:
    assert code_of(sheet()) == "missing_signature"


def test_a_sheet_of_another_validator_is_refused() -> None:
    signed = sign_scores(VALIDATOR, sheet())
    assert code_of(signed, OTHER.hotkey) == "wrong_validator"
    theirs = sign_scores(OTHER, sheet(validator_hotkey=OTHER.hotkey))
    verify_scores(theirs, OTHER.hotkey)
    assert code_of(theirs) == "wrong_validator"


def test_a_sheet_relabelled_for_another_validator_is_refused() -> None:
    signed = sign_scores(VALIDATOR, sheet())
    assert code_of(signed.model_copy(update={"validator_hotkey": OTHER.hotkey}), OTHER.hotkey) == "bad_signature"


def test_a_sheet_signed_by_another_key_or_for_another_purpose_is_refused() -> None:
    unsigned = sheet()
    assert code_of(unsigned.model_copy(update={"signature": OTHER.sign(SCORES_PURPOSE, unsigned.signed_fields())})) == (
        "bad_signature"
    )
    assert code_of(unsigned.model_copy(update={"signature": VALIDATOR.sign("registry", unsigned.signed_fields())})) == (
        "bad_signature"
    )
    assert code_of(unsigned.model_copy(update={"signature": "00" * 64})) == "bad_signature"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"at": 1_700_000_001.0}, id="at"),
        pytest.param({"window_s": 7200.0}, id="window"),
        pytest.param(
            {"scores": {MINER_1: {"cpu.small": 13.0, "gpu.large": 3.5}, MINER_2: {"cpu.small": 0.25}}}, id="score"
        ),
        pytest.param({"scores": {MINER_1: {"cpu.small": 12.0, "gpu.large": 3.5}}}, id="miner-removed"),
        pytest.param({"scores": {MINER_1: {"cpu.small": 12.0}, MINER_2: {"cpu.small": 0.25}}}, id="class-removed"),
        pytest.param(
            {"scores": {MINER_1: {"cpu.small": 12.0, "gpu.large": 3.5}, MINER_2: {"cpu.large": 0.25}}},
            id="class-renamed",
        ),
        pytest.param(
            {"scores": {MINER_2: {"cpu.small": 12.0, "gpu.large": 3.5}, MINER_1: {"cpu.small": 0.25}}},
            id="miners-swapped",
        ),
        pytest.param(
            {
                "scores": {
                    MINER_1: {"cpu.small": 12.0, "gpu.large": 3.5},
                    MINER_2: {"cpu.small": 0.25},
                    OTHER.hotkey: {"cpu.small": 1.0},
                }
            },
            id="miner-added",
        ),
    ],
)
def test_a_sheet_altered_after_signing_is_refused(change: dict[str, Any]) -> None:
    signed = sign_scores(VALIDATOR, sheet())
    assert code_of(signed.model_copy(update=change)) == "bad_signature"


@pytest.mark.parametrize(
    "change",
    [
        {"validator_hotkey": "AB" * 32},
        {"validator_hotkey": "ab" * 31},
        {"window_s": 0},
        {"window_s": -1.0},
        {"scores": {MINER_1: 1.0}},
        {"scores": {MINER_1: {"cpu.small": "high"}}},
        {"signature": "ab" * 63},
        {"signature": "AB" * 64},
        {"extra": 1},
    ],
)
def test_a_sheet_refuses_malformed_fields(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        sheet(**change)


def test_a_sheet_is_frozen() -> None:
    signed = sign_scores(VALIDATOR, sheet())
    with pytest.raises(ValidationError):
        signed.at = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "path",
    [pytest.param(("at",), id="at"), pytest.param(("scores", MINER_1, "cpu.small"), id="score")],
)
@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_sheet_with_a_non_finite_number_is_refused_as_a_model_or_signature(
    path: tuple[str, ...], value: float
) -> None:
    data = json.loads(sign_scores(VALIDATOR, sheet()).model_dump_json())
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        received = ScoreSheet.model_validate_json(json.dumps(data))  # json.dumps writes NaN / Infinity
    except ValidationError:
        return
    with pytest.raises(SignatureError):
        verify_scores(received, VALIDATOR.hotkey)
