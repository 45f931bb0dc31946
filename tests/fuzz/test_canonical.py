"""Fuzzing canonical JSON (protocol/canonical.py) and the signature check built on it (protocol/keys.py).

Payloads reach :func:`~protocol.canonical.canonical_json` straight from the network: a job's
spec and a request's path are checked against a signature before anything else looks at them.
Whatever they hold, canonical JSON is bytes or a ``ValueError``, and a signature check is a
:class:`~protocol.errors.SignatureError`, never anything else.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from protocol.canonical import canonical_json
from protocol.errors import SignatureError
from protocol.keys import verify_payload

from .conftest import FUZZ
from .samples import CLIENT
from .strategies import hex_strings, hostile_text, json_values

pytestmark = pytest.mark.timeout(120)


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere, and every string (keys included) encodable as UTF-8."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except ValueError:
        return False
    return True


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _deep_stack(depth: int, call: Any) -> Any:
    """``call()`` from ``depth`` frames down, as a consumer calls it from deep in its own stack."""
    return call() if depth == 0 else _deep_stack(depth - 1, call)


@FUZZ
@given(value=json_values)
@example(value={"a": "\ud800"})
@example(value={"\udfff": 1})
@example(value=[math.nan])
@example(value=10**4300)
def test_canonical_json_is_utf8_bytes_or_value_error(value: Any) -> None:
    """Any JSON value gives UTF-8 bytes that parse back to it, or a ValueError (NaN, lone surrogates)."""
    try:
        encoded = canonical_json(value)
    except ValueError:
        assert not _finite(value)
        return
    assert json.loads(encoded.decode("utf-8")) == value
    assert canonical_json(json.loads(encoded)) == encoded


@pytest.mark.parametrize("depth", [500, 990, 5000])
def test_canonical_json_of_a_deep_value_is_a_value_error_not_a_recursion_error(depth: int) -> None:
    """A value parsed near the recursion limit, serialised from deeper in the stack: ValueError."""
    value = _nested(depth)
    try:
        encoded = _deep_stack(200, lambda: canonical_json(value))
    except ValueError as exc:
        assert "nested" in str(exc)
        return
    assert json.loads(encoded) == value


@FUZZ
@given(
    hotkey=hex_strings(64),
    purpose=st.sampled_from(["job-spec", "request", "registry", "receipt"]),
    payload=json_values,
    signature=hex_strings(128),
)
@example(hotkey=CLIENT.hotkey, purpose="job-spec", payload={"spec": {"a": "\udc00"}}, signature="00" * 64)
@example(hotkey=CLIENT.hotkey, purpose="job-spec", payload={"spec": {"a": math.inf}}, signature="00" * 64)
@example(hotkey=CLIENT.hotkey, purpose="request", payload={"path": "/\ud800"}, signature="00" * 64)
@example(hotkey="٠" * 64, purpose="request", payload={}, signature="00" * 64)
def test_verify_payload_only_raises_signature_error(hotkey: str, purpose: str, payload: Any, signature: str) -> None:
    """A signature check over any payload, key and signature text raises SignatureError or passes."""
    with pytest.raises(SignatureError):
        verify_payload(hotkey, purpose, payload, signature)


@pytest.mark.parametrize("depth", [990, 5000])
def test_verify_payload_of_a_deep_payload_is_a_signature_error(depth: int) -> None:
    """A spec nested near the recursion limit, checked from deep in a consumer's stack: SignatureError."""
    payload = {"job_id": "j", "spec": {"a": _nested(depth)}}
    with pytest.raises(SignatureError):
        _deep_stack(200, lambda: verify_payload(CLIENT.hotkey, "job-spec", payload, "00" * 64))


@FUZZ
@given(payload=json_values.filter(_finite), key=hostile_text)
def test_a_valid_signature_over_any_finite_payload_verifies(payload: Any, key: str) -> None:
    """What a key signs (any finite JSON) verifies with its hotkey, the round trip of the signed bytes."""
    document = {"k": key, "v": payload}
    if not _finite(document):
        return
    verify_payload(CLIENT.hotkey, "job-spec", document, CLIENT.sign("job-spec", document))
    verify_payload(CLIENT.hotkey, "job-spec", json.loads(json.dumps(document)), CLIENT.sign("job-spec", document))
