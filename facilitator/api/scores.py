"""``/api/v1/scores``: every validator's newest signed score sheet (public)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router

from facilitator.scores import latest_scores

router = Router(tags=["scores"])


@router.get("/scores", auth=None, summary="The newest signed score sheet of every validator")
def scores(request: HttpRequest) -> dict:
    return {"validators": latest_scores()}
