"""The NinjaAPI instance: every route signed, one error shape, a public health probe.

The OpenAPI schema (``/api/v1/openapi.json``) says what the server does: every refusal an
operation can answer with its body (``ErrorOut``), and the request signature as four header
security schemes required together.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import NinjaAPI, Schema

from facilitator.api.auth import SECURITY_SCHEMES, SignedRequestAuth, SignedRequestNonceLater, signed_request
from facilitator.api.errors import REFUSAL_DESCRIPTIONS, install_error_handlers, refusals
from facilitator.api.files import router as files_router
from facilitator.api.jobs import router as jobs_router
from facilitator.api.parser import StrictJSONParser
from facilitator.api.reports import router as reports_router
from facilitator.api.scores import router as scores_router
from facilitator.models import ValidatorPresence
from node.identity import own_keypair


class GridAPI(NinjaAPI):
    def get_openapi_schema(self, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(**kwargs)
        components = schema.setdefault("components", {})
        schemes = components.setdefault("securitySchemes", {})
        for auth in (SignedRequestAuth, SignedRequestNonceLater):  # ninja's names for them: the four headers
            schemes.pop(auth.__name__, None)
        schemes.update(SECURITY_SCHEMES)
        signed = {name: [] for name in SECURITY_SCHEMES}  # one requirement: all four headers at once
        for operations in schema["paths"].values():
            for operation in operations.values():
                if operation.get("security"):
                    operation["security"] = [signed]
                for status, response in operation.get("responses", {}).items():
                    if int(status) in REFUSAL_DESCRIPTIONS and "ErrorOut" in str(response.get("content")):
                        response["description"] = REFUSAL_DESCRIPTIONS[int(status)]
        return schema


class HealthOut(Schema):
    status: str
    hotkey: str
    validators: int


api = GridAPI(
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


@api.get(
    "/health", auth=None, response={200: HealthOut, **refusals()}, summary="Liveness and this facilitator's hotkey"
)
def health(request: HttpRequest) -> dict:
    return {"status": "ok", "hotkey": own_keypair().hotkey, "validators": ValidatorPresence.objects.count()}
