"""``GET /api/v1/registry`` and ``POST /api/v1/registry/announce`` (DESIGN.md §3, §8).

The snapshot is public: its worth is the facilitator's signature over it, which every reader
checks. It is signed once per registry version and served from memory until the next change;
``If-None-Match`` with its ``ETag`` is answered 304. Announcing is a signed request (the same
headers, freshness and nonce rules as the rest of the API) from the miner's own hotkey, but not
subject to the client allow-list: miners are not clients.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from facilitator.api.auth import claim_nonce
from facilitator.registry.errors import RegistryError
from facilitator.registry.handler import get_registry
from node.identity import own_keypair
from node.signed_requests import verified_request
from protocol.errors import RequestAuthError
from protocol.registry import Role

__all__ = ["announce", "snapshot"]


class AnnounceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    address: str = Field(max_length=512, description="the miner's ws:// or wss:// server root")


def _error(status: int, code: str, message: str, errors: list | None = None) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, "errors": errors or []}, status=status)


@require_GET
def snapshot(request: HttpRequest) -> HttpResponse:
    signed, body = get_registry().signed_snapshot(own_keypair())
    etag = f'"{signed.version}-{signed.signature[:32]}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == etag:
        return HttpResponse(status=304, headers=headers)
    return HttpResponse(body, content_type="application/json", headers=headers)


@require_POST
def announce(request: HttpRequest) -> JsonResponse:
    try:
        signed = verified_request(request)
        claim_nonce(signed)
    except RequestAuthError as exc:
        return _error(401, exc.code, exc.message)
    try:
        body = AnnounceIn.model_validate_json(request.body)
    except ValidationError as exc:
        errors = [{"field": ".".join(map(str, e["loc"])) or "body", "message": e["msg"]} for e in exc.errors()]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return _error(400, "invalid_request", f"invalid announcement: {summary}", errors)
    registry = get_registry()
    try:
        neuron = registry.announce(
            signed.hotkey,
            body.address,
            role=body.role,
            open_registry=getattr(settings, "FACILITATOR_REGISTRY_OPEN", True),
        )
    except RegistryError as exc:
        return _error(exc.status, exc.code, exc.message)
    return JsonResponse({"neuron": neuron.model_dump(mode="json"), "version": registry.version()})
