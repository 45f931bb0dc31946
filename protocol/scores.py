"""Miner scores as a validator publishes them (DESIGN.md §8), signed with its hotkey.

A validator counts each miner's verified ``finished`` receipts over a window, per executor
class, lowers the score of miners with incidents, and sends the :class:`ScoreSheet` to the
facilitator, which keeps the latest sheet of every validator.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from protocol.errors import SignatureError
from protocol.keys import Keypair, verify_payload

__all__ = ["SCORES_PURPOSE", "ScoreSheet", "sign_scores", "verify_scores"]

SCORES_PURPOSE = "scores"


class ScoreSheet(BaseModel):
    """``scores[miner_hotkey][executor_class]`` over ``[at - window_s, at]``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    validator_hotkey: str = Field(pattern=r"^[0-9a-f]{64}$")
    at: float
    window_s: float = Field(gt=0)
    scores: dict[str, dict[str, float]] = Field(max_length=100_000)
    signature: str = Field("", pattern=r"^([0-9a-f]{128})?$")

    def signed_fields(self) -> dict:
        return self.model_dump(mode="json", exclude={"signature"})


def sign_scores(validator: Keypair, sheet: ScoreSheet) -> ScoreSheet:
    if sheet.validator_hotkey != validator.hotkey:
        raise ValueError("a score sheet is signed by the validator it names")
    return sheet.model_copy(update={"signature": validator.sign(SCORES_PURPOSE, sheet.signed_fields())})


def verify_scores(sheet: ScoreSheet, validator_hotkey: str) -> None:
    """Raises :class:`SignatureError` unless ``validator_hotkey`` signed exactly this sheet."""
    if sheet.validator_hotkey != validator_hotkey:
        raise SignatureError("the sheet is another validator's", code="wrong_validator")
    if not sheet.signature:
        raise SignatureError("the sheet is not signed", code="missing_signature")
    verify_payload(validator_hotkey, SCORES_PURPOSE, sheet.signed_fields(), sheet.signature)
