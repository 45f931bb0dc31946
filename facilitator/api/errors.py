"""One error shape for every refusal: ``{"code": ..., "message": ..., "errors": [...]}``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from protocol.errors import RequestAuthError, SignatureError
from protocol.spec import SpecError

__all__ = ["ApiError", "install_error_handlers"]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors or []


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

    @api.exception_handler(AuthenticationError)
    def _ninja_auth(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return reply(request, 401, "unauthenticated", "this endpoint needs a signed request")

    @api.exception_handler(SpecError)
    def _spec(request: HttpRequest, exc: SpecError) -> HttpResponse:
        return reply(request, 400, exc.code, exc.message, exc.errors)

    @api.exception_handler(SignatureError)
    def _signature(request: HttpRequest, exc: SignatureError) -> HttpResponse:
        return reply(request, 400, "bad_job_signature", f"job signature refused: {exc.message}")

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
