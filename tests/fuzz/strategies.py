"""Hostile input for the fuzz tests: JSON that is almost right, text that is not UTF-8, numbers too big.

Everything a peer can put on the wire: random text and bytes, JSON with NaN and Infinity
literals, huge integers and floats that overflow, lone surrogates (raw, or as ``\\ud800``
escapes), non-UTF-8 bytes, nesting thousands deep, and valid documents with one field changed.
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "HEX",
    "deeply_nested",
    "encoded_frames",
    "hex_strings",
    "hostile_text",
    "json_values",
    "mutated",
    "nasty_floats",
    "nasty_ints",
    "nasty_scalars",
]

HEX = "0123456789abcdef"

lone_surrogates = st.characters(categories=["Cs"])
# Mostly printable text, sometimes control characters, NUL, lone surrogates or far planes.
hostile_text = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.text(st.one_of(st.characters(), lone_surrogates), max_size=8),
    st.sampled_from(["", " ", "\x00", "\ud800", "\udfff", "a\udc80b", "😀", "..", "/", "%ff", "null", "NaN"]),
)
nasty_ints = st.one_of(
    st.integers(-1000, 1000),
    st.integers(),
    st.sampled_from([0, -1, 1, 65535, 65536, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
    st.integers(min_value=10**300, max_value=10**310),
)
nasty_floats = st.one_of(
    st.floats(),  # NaN and ±Infinity included
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 1.7976931348623157e308, 1e-400, 1e400]),
)
nasty_scalars = st.one_of(st.none(), st.booleans(), nasty_ints, nasty_floats, hostile_text)

json_values = st.recursive(
    nasty_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=10,
)


def hex_strings(size: int) -> st.SearchStrategy[str]:
    """Hex of ``size`` characters, of a near length, in upper case, or not hex at all."""
    return st.one_of(
        st.text(HEX, min_size=size, max_size=size),
        st.text(HEX, max_size=size + 4),
        st.text(HEX + "ABCDEF", min_size=size, max_size=size),
        st.text(string.hexdigits + "g -x٠", min_size=size - 2, max_size=size + 2),
        hostile_text,
    )


def _nest(depth: int, inner: str, kind: str) -> str:
    if kind == "list":
        return "[" * depth + inner + "]" * depth
    return '{"a":' * depth + inner + "}" * depth


def deeply_nested(wrap: str = "@") -> st.SearchStrategy[str]:
    """JSON text nested 50 to 100 000 deep, put where ``@`` is in ``wrap``."""
    return st.builds(
        lambda depth, inner, kind: wrap.replace("@", _nest(depth, inner, kind)),
        st.one_of(st.integers(50, 400), st.integers(400, 3000), st.sampled_from([254, 255, 256, 999, 1000, 100_000])),
        st.sampled_from(["1", "null", '""', "[]", "{}"]),
        st.sampled_from(["list", "dict"]),
    )


def _dumps(value: Any, ensure_ascii: bool) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii)  # NaN / Infinity literals included


def encoded_frames(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str | bytes]:
    """``values`` as a websocket frame: text, UTF-8 bytes, bytes with a surrogate smuggled in, UTF-16."""

    def encode(value: Any, ensure_ascii: bool, how: str) -> str | bytes:
        text = _dumps(value, ensure_ascii)
        if how == "text":
            return text
        if how == "utf-16":
            return text.encode("utf-16", errors="surrogatepass")
        if how == "latin-1":
            return text.encode("latin-1", errors="replace")
        return text.encode("utf-8", errors="surrogatepass")

    return st.builds(encode, values, st.booleans(), st.sampled_from(["text", "text", "utf-8", "utf-16", "latin-1"]))


def mutated(document: dict[str, Any], fields: list[str] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """``document`` (a JSON object) with fields set to hostile values, removed or added, at any depth."""
    paths = list(_paths(document))
    extra = st.sampled_from(fields) if fields else hostile_text

    def apply(changes: list[tuple[tuple[str | int, ...], str, Any, str]]) -> dict[str, Any]:
        data = json.loads(json.dumps(document))
        for path, action, value, new_key in changes:
            parent: Any = data
            try:
                for part in path[:-1]:
                    parent = parent[part]
                key = path[-1] if path else None
                if key is None:
                    continue
                if action == "drop":
                    del parent[key]
                elif action == "add" and isinstance(parent, dict):
                    parent[new_key] = value
                else:
                    parent[key] = value
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change removed the way there
        # As it would arrive: through JSON, where every key is a string (NaN and lone surrogates stay).
        return json.loads(json.dumps(data))

    change = st.tuples(st.sampled_from(paths), st.sampled_from(["set", "set", "drop", "add"]), json_values, extra)
    return st.builds(apply, st.lists(change, min_size=1, max_size=3))


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found
