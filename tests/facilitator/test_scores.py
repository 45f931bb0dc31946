"""Validators' score sheets on the facilitator (facilitator/scores.py, api/scores.py, consumers.py).

Validators send real signed sheets over the real ``ws/validator/`` routing; anyone reads the
newest sheet of every validator from ``GET /api/v1/scores`` and can check it again.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from facilitator.models import ValidatorScores
from protocol.keys import Keypair
from protocol.messages import Error, Scores
from protocol.scores import ScoreSheet, sign_scores, verify_scores
from tests.ws import Peer

from .conftest import API, OTHER_VALIDATOR, VALIDATOR, Dial

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("validators_allowed")]

MINER = "ab" * 32


def sheet(
    validator: Keypair = VALIDATOR, at: float = 1_700_000_000.0, score: float = 0.9, **changes: Any
) -> ScoreSheet:
    fields: dict[str, Any] = {
        "validator_hotkey": validator.hotkey,
        "at": at,
        "window_s": 3600.0,
        "scores": {MINER: {"cpu.small": score}},
    }
    fields.update(changes)
    return sign_scores(validator, ScoreSheet(**fields))


async def answered(validator: Peer) -> Error | None:
    """The consumer's answer to the frames sent so far: an error, or ``None`` if it had none.

    Frames are handled in order, so the answer to a bad frame sent last comes after any other.
    """
    await validator.send("sync")
    message = await validator.receive()
    assert isinstance(message, Error), message
    if message.code == "bad_json":
        return None
    sync = await validator.receive()
    assert isinstance(sync, Error) and sync.code == "bad_json", sync
    return message


def public_scores() -> dict:
    response = Client().get(f"{API}/scores")
    assert response.status_code == 200, response.content
    return response.json()


async def apublic_scores() -> dict:
    return await sync_to_async(public_scores)()


async def test_a_signed_sheet_is_kept_and_published_for_anyone_to_verify(dial_validator: Dial) -> None:
    validator = await dial_validator(VALIDATOR)
    sent = sheet()
    await validator.send(Scores(sheet=sent))
    assert await answered(validator) is None
    [published] = (await apublic_scores())["validators"]
    assert published == sent.model_dump(mode="json")
    assert sorted(published) == ["at", "scores", "signature", "validator_hotkey", "window_s"]
    verify_scores(ScoreSheet.model_validate(published), VALIDATOR.hotkey)


async def test_the_scores_page_needs_no_signature_and_starts_empty() -> None:
    assert await apublic_scores() == {"validators": []}


async def test_each_validator_has_its_own_latest_sheet(dial_validator: Dial) -> None:
    first, second = await dial_validator(VALIDATOR), await dial_validator(OTHER_VALIDATOR)
    await first.send(Scores(sheet=sheet(VALIDATOR, score=0.5)))
    await second.send(Scores(sheet=sheet(OTHER_VALIDATOR, score=0.25)))
    assert await answered(first) is None and await answered(second) is None
    published = {row["validator_hotkey"]: row["scores"] for row in (await apublic_scores())["validators"]}
    assert published == {
        VALIDATOR.hotkey: {MINER: {"cpu.small": 0.5}},
        OTHER_VALIDATOR.hotkey: {MINER: {"cpu.small": 0.25}},
    }


async def test_a_newer_sheet_replaces_the_kept_one(dial_validator: Dial) -> None:
    validator = await dial_validator(VALIDATOR)
    await validator.send(Scores(sheet=sheet(at=100.0, score=0.5)))
    await validator.send(Scores(sheet=sheet(at=200.0, score=0.75)))
    assert await answered(validator) is None
    [published] = (await apublic_scores())["validators"]
    assert (published["at"], published["scores"]) == (200.0, {MINER: {"cpu.small": 0.75}})


@pytest.mark.parametrize("at", [100.0, 200.0])
async def test_an_older_or_same_time_sheet_does_not_replace_the_kept_one(dial_validator: Dial, at: float) -> None:
    validator = await dial_validator(VALIDATOR)
    await validator.send(Scores(sheet=sheet(at=200.0, score=0.75)))
    await validator.send(Scores(sheet=sheet(at=at, score=0.1)))
    assert await answered(validator) is None
    [published] = (await apublic_scores())["validators"]
    assert (published["at"], published["scores"]) == (200.0, {MINER: {"cpu.small": 0.75}})


async def test_a_sheet_of_another_validator_is_refused_and_not_kept(dial_validator: Dial) -> None:
    """Even correctly signed by that other validator: a validator speaks only for itself."""
    validator = await dial_validator(VALIDATOR)
    await validator.send(Scores(sheet=sheet(OTHER_VALIDATOR)))
    error = await answered(validator)
    assert error is not None
    assert (error.code, error.message) == ("wrong_validator", "score sheet refused: the sheet is another validator's")
    assert not await ValidatorScores.objects.aexists()


async def test_a_sheet_altered_after_signing_is_refused_and_changes_nothing(dial_validator: Dial) -> None:
    validator = await dial_validator(VALIDATOR)
    kept = sheet(at=100.0)
    await validator.send(Scores(sheet=kept))
    forged = sheet(at=200.0).model_copy(update={"scores": {MINER: {"cpu.small": 1.0}}})
    await validator.send(Scores(sheet=forged))
    error = await answered(validator)
    assert error is not None
    assert (error.code, error.message) == ("bad_signature", "score sheet refused: signature does not verify")
    [published] = (await apublic_scores())["validators"]
    assert published == kept.model_dump(mode="json")


async def test_an_unsigned_sheet_is_refused(dial_validator: Dial) -> None:
    validator = await dial_validator(VALIDATOR)
    unsigned = sheet().model_copy(update={"signature": ""})
    await validator.send(Scores(sheet=unsigned))
    error = await answered(validator)
    assert error is not None and error.code == "missing_signature"
    assert not await ValidatorScores.objects.aexists()


async def test_a_malformed_sheet_is_answered_with_an_error(dial_validator: Dial) -> None:
    validator = await dial_validator(VALIDATOR)
    frame = Scores(sheet=sheet()).model_dump(mode="json")
    frame["sheet"]["window_s"] = -1
    await validator.send(frame)
    error = await answered(validator)
    assert error is not None and error.code == "invalid_message"
    assert not await ValidatorScores.objects.aexists()
