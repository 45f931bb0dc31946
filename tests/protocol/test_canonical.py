"""Canonical JSON: sorted keys, no whitespace, UTF-8 (protocol/canonical.py)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.canonical import canonical_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=12,
)


def test_keys_are_sorted_at_every_level_and_there_is_no_whitespace() -> None:
    """Nested objects come out with sorted keys and without any space or newline."""
    value = {"b": 1, "a": {"d": [1, {"z": None, "y": True}], "c": "x y"}}
    assert canonical_json(value) == b'{"a":{"c":"x y","d":[1,{"y":true,"z":null}]},"b":1}'


def test_non_ascii_text_is_written_as_raw_utf8_not_escaped() -> None:
    """Non-ASCII characters are encoded as UTF-8 bytes, not as \\u escapes."""
    assert canonical_json({"k": "é→😀"}) == '{"k":"é→😀"}'.encode()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"x": [math.nan]}])
def test_nan_and_infinity_are_refused(value: Any) -> None:
    """Values with no JSON representation raise ValueError instead of signing non-standard JSON."""
    with pytest.raises(ValueError):
        canonical_json(value)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_canonical_bytes_parse_back_to_the_same_value_and_are_a_fixed_point(value: Any) -> None:
    """The bytes are UTF-8 JSON that decodes to the original value, and re-canonicalising gives the same bytes."""
    once = canonical_json(value)
    assert json.loads(once.decode("utf-8")) == value
    assert canonical_json(json.loads(once)) == once


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=6), json_values), min_size=2, max_size=5))
def test_canonical_bytes_do_not_depend_on_insertion_order(items: list[tuple[str, Any]]) -> None:
    """Two dicts with the same items in a different order serialise to the same bytes."""
    value = dict(items)
    assert canonical_json(dict(reversed(value.items()))) == canonical_json(value)
