"""Canonical JSON: sorted keys, no whitespace, UTF-8 (DESIGN.md §3).

Every signature is computed over these bytes, so two parties that serialise the same value
always sign and verify the same bytes. :func:`strict_loads` is the other way: it reads only
JSON that can be written again, so whatever a peer sent can be signed, stored and relayed.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

__all__ = ["MAX_DEPTH", "canonical_json", "strict_loads"]

# Far deeper than any message or document; pydantic serialises no more than 255 levels.
MAX_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` (plain JSON types) to canonical bytes.

    Raises:
        ValueError: ``value`` has no canonical form: NaN or infinity, a lone surrogate, an integer
            of more than 4300 digits, or nesting deeper than the interpreter can follow.
    """
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except RecursionError:
        raise ValueError("value is nested too deeply for canonical JSON") from None
    return text.encode("utf-8")


def strict_loads(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON as RFC 8259 has it: UTF-8, no NaN or Infinity, no lone surrogates.

    Args:
        max_depth: how deep objects and arrays may nest.

    Raises:
        ValueError: ``data`` is not such JSON, or nests deeper than ``max_depth``.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        text.encode("utf-8")  # a str may hold lone surrogates, which no peer can have sent
        value = _DECODER.decode(text)
        if _SURROGATE_ESCAPE.search(text):  # an escaped pair is fine, a lone escaped surrogate is not
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    # Nesting needs a container per level: a text with few brackets cannot nest too deep (most frames).
    if text.count("{") + text.count("[") > max_depth and _deeper_than(value, max_depth):
        raise ValueError(f"JSON nested more than {max_depth} deep")
    return value


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


# One decoder for every frame: json.loads with hooks makes a new one (and its scanner) per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects and arrays more than ``limit`` deep (level by level, no recursion)."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return bool(level)
