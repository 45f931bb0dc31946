"""The NinjaAPI instance: every route signed, one error shape, a public health probe."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import NinjaAPI

from facilitator.api.auth import signed_request
from facilitator.api.errors import install_error_handlers
from facilitator.api.files import router as files_router
from facilitator.api.jobs import router as jobs_router
from facilitator.api.parser import StrictJSONParser
from facilitator.api.reports import router as reports_router
from facilitator.api.scores import router as scores_router
from facilitator.models import ValidatorPresence
from node.identity import own_keypair

api = NinjaAPI(
    title="Gridmarket facilitator",
    version="1",
    urls_namespace="api-v1",
    auth=signed_request,
    parser=StrictJSONParser(),
)
install_error_handlers(api)
api.add_router("/", jobs_router)
api.add_router("/", files_router)
api.add_router("/", reports_router)
api.add_router("/", scores_router)


@api.get("/health", auth=None, summary="Liveness and this facilitator's hotkey")
def health(request: HttpRequest) -> dict:
    return {"status": "ok", "hotkey": own_keypair().hotkey, "validators": ValidatorPresence.objects.count()}
