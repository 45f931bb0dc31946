"""One error shape for every refusal: ``{"code": ..., "message": ..., "errors": [...]}``.

:func:`refusals` declares that shape for the statuses an operation can answer, so that the
OpenAPI schema lists every one of them with its body.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from protocol.errors import RequestAuthError, SignatureError
from protocol.spec import SpecError

__all__ = ["ApiError", "ErrorOut", "FieldError", "install_error_handlers", "job_refusal", "refusals"]

# What each refusal status means here, for the schema's response descriptions.
REFUSAL_DESCRIPTIONS = {
    400: "Bad request: `invalid_request` (a body or parameter outside the schema), or the operation's own codes",
    401: "The request signature is missing, stale, replayed or wrong (`missing_signature`, `bad_nonce`, "
    "`stale_request`, `replayed`, `bad_signature`)",
    403: "Signed, but this client is not allowed here (`forbidden`)",
    404: "No such thing of yours (`not_found`): unknown and another client's look alike",
    409: "The request conflicts with the current state (see the operation)",
    413: "The request body is larger than the facilitator reads (`request_too_large`)",
    422: "Well formed, but its signed content does not verify",
    429: "Too many requests from this hotkey or address (`rate_limited`); see `Retry-After`",
}


class FieldError(Schema):
    field: str
    message: str


class ErrorOut(Schema):
    """Every refusal of the API."""

    code: str
    message: str
    errors: list[FieldError]


def refusals(*statuses: int) -> dict[int, type[ErrorOut]]:
    """``response=`` entries for the refusals an operation can answer (429 always can)."""
    return {status: ErrorOut for status in sorted({*statuses, 429})}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors or []


def job_refusal(exc: Exception) -> tuple[str, str, list[dict[str, Any]]]:
    """The code, message and field errors of a refused job (:func:`facilitator.jobs.create_job`'s
    ``SpecError``, ``SignatureError`` or ``JobConflict``): one answer on both ways in, the REST
    create and the event stream's ``job.create``."""
    if isinstance(exc, SpecError):
        return exc.code, exc.message, exc.errors
    if isinstance(exc, SignatureError):
        return "bad_job_signature", f"job signature refused: {exc.message}", []
    return "conflict", str(exc), []


def install_error_handlers(api: NinjaAPI) -> None:
    def reply(request: HttpRequest, status: int, code: str, message: str, errors: list | None = None) -> HttpResponse:
        return api.create_response(request, {"code": code, "message": message, "errors": errors or []}, status=status)

    @api.exception_handler(ApiError)
    def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return reply(request, exc.status, exc.code, exc.message, exc.errors)

    @api.exception_handler(RequestAuthError)
    def _auth(request: HttpRequest, exc: RequestAuthError) -> HttpResponse:
        # Authenticated but not allowed is 403; everything else about the signature is 401.
        return reply(request, 403 if exc.code == "forbidden" else 401, exc.code, exc.message)

    @api.exception_handler(RequestDataTooBig)
    def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return reply(request, 413, "request_too_large", f"request bodies here are limited to {limit} bytes")

    @api.exception_handler(AuthenticationError)
    def _ninja_auth(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return reply(request, 401, "unauthenticated", "this endpoint needs a signed request")

    @api.exception_handler(SpecError)
    @api.exception_handler(SignatureError)
    def _job(request: HttpRequest, exc: SpecError | SignatureError) -> HttpResponse:
        return reply(request, 400, *job_refusal(exc))

    @api.exception_handler(NinjaValidationError)
    def _validation(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        errors = [{"field": _field(err.get("loc", ())), "message": err.get("msg", "")} for err in exc.errors]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return reply(request, 400, "invalid_request", f"invalid request: {summary}", errors)

    @api.exception_handler(HttpError)
    def _http(request: HttpRequest, exc: HttpError) -> HttpResponse:
        code = "invalid_request" if exc.status_code == 400 else "http_error"
        return reply(request, exc.status_code, code, str(exc))


def _field(loc: tuple | list) -> str:
    """Ninja's error location, minus where it came from: ``("query", "limit")`` → ``limit``,
    ``("body", "body", "spec", "command")`` → ``spec.command`` (the second ``body`` is our parameter)."""
    parts = list(loc)
    source = parts.pop(0) if parts else "body"
    if source == "body" and parts:
        parts.pop(0)
    return ".".join(str(part) for part in parts) or source
