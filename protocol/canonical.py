"""Canonical JSON: sorted keys, no whitespace, UTF-8 (DESIGN.md §3).

Every signature is computed over these bytes, so two parties that serialise the same value
always sign and verify the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["canonical_json"]


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` (plain JSON types) to canonical bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
