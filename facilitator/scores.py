"""Validators' score sheets on the facilitator (DESIGN.md §8): the newest verified sheet of each."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from facilitator.models import ValidatorScores
from protocol.scores import ScoreSheet, verify_scores

__all__ = ["latest_scores", "store_scores"]


def store_scores(validator_hotkey: str, sheet: ScoreSheet) -> bool:
    """Keep ``sheet`` if ``validator_hotkey`` signed it and it is newer than the one kept.

    Returns whether it replaced the kept sheet (an older or equal ``at`` changes nothing).

    Raises:
        SignatureError: the sheet is another validator's, or its signature does not verify.
    """
    verify_scores(sheet, validator_hotkey)
    payload = sheet.model_dump(mode="json")
    with transaction.atomic():
        kept = ValidatorScores.objects.select_for_update().filter(validator_hotkey=validator_hotkey).first()
        if kept is None:
            ValidatorScores.objects.create(validator_hotkey=validator_hotkey, at=sheet.at, sheet=payload)
            return True
        if sheet.at <= kept.at:
            return False
        kept.at, kept.sheet = sheet.at, payload
        kept.save(update_fields=["at", "sheet", "received_at"])
    return True


def latest_scores() -> list[dict[str, Any]]:
    """Every validator's newest sheet, exactly as signed: anyone can check it with ``verify_scores``."""
    return [row.sheet for row in ValidatorScores.objects.order_by("validator_hotkey")]
