"""Refusals that never reach the API's handlers (a wrong method, an unknown route) in its error shape."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

__all__ = ["ApiErrorShapeMiddleware"]

_CODES = {404: ("not_found", "no such API route"), 405: ("method_not_allowed", "method not allowed here")}


class ApiErrorShapeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        known = _CODES.get(response.status_code)
        if (
            known is None
            or not request.path.startswith("/api/")
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        code, message = known
        if response.status_code == 405 and response.get("Allow"):
            message = f"{request.method} is not allowed here; allowed: {response['Allow']}"
        shaped = JsonResponse({"code": code, "message": message, "errors": []}, status=response.status_code)
        if response.get("Allow"):
            shaped["Allow"] = response["Allow"]
        return shaped
