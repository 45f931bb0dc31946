"""A Content-Security-Policy on the dashboard's pages.

Hotkeys, job ids, failure messages and incident texts come from the network; templates escape
them, and this policy is the second line: the pages run no inline script and load nothing from
another origin, so a string that slipped through could still not run or call out.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

__all__ = ["POLICY", "ContentSecurityPolicy"]

POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicy(MiddlewareMixin):
    """Adds :data:`POLICY` to responses of the ``dashboard`` namespace (the admin keeps its own ways)."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        match = getattr(request, "resolver_match", None)
        if match is not None and match.namespace == "dashboard":
            response.headers.setdefault("Content-Security-Policy", POLICY)
        return response
