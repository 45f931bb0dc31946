"""``/api/v1/scores``: every validator's newest signed score sheet (public)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema

from facilitator.api.errors import refusals
from facilitator.scores import latest_scores

router = Router(tags=["scores"])


class ScoresOut(Schema):
    validators: list[dict[str, Any]] = Field(description="each validator's sheet exactly as it signed it")


@router.get(
    "/scores",
    auth=None,
    response={200: ScoresOut, **refusals()},
    summary="The newest signed score sheet of every validator",
)
def scores(request: HttpRequest) -> dict:
    return {"validators": latest_scores()}
