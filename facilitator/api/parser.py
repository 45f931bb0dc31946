"""Request bodies read as strictly as websocket frames (``protocol.canonical.strict_loads``).

Python's ``json`` takes ``NaN``, ``Infinity`` and lone surrogates (``"\\ud800"``), none of which
can be signed, stored or sent on again; a body holding one is refused like any body that is not
JSON (400 ``invalid_request``), before a view sees it.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser

from protocol.canonical import strict_loads

__all__ = ["StrictJSONParser"]


class StrictJSONParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        return strict_loads(request.body)
