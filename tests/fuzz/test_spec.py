"""Fuzzing job spec validation (protocol/spec.py): every hop parses a client's spec from JSON.

:func:`~protocol.spec.parse_spec` returns a :class:`~protocol.spec.JobSpec` or raises
:class:`~protocol.spec.SpecError` whose ``errors`` are plain JSON (the API sends them back);
a valid spec survives ``to_wire`` and parsing again, and :func:`~protocol.spec.verify_job` only
ever raises :class:`~protocol.errors.SignatureError`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from protocol.errors import SignatureError
from protocol.spec import JobSpec, SpecError, parse_spec, sign_job, verify_job

from .conftest import FUZZ, fuzz
from .samples import CLIENT, JOB_ID, SPEC
from .strategies import deeply_nested, hex_strings, hostile_text, json_values, mutated

pytestmark = pytest.mark.timeout(120)

SPEC_FIELDS = [*sorted(JobSpec.model_fields), "kind", "path", "url", "key", "sha256", "content_b64", "method", "cpu"]


def check_spec(raw: Any) -> JobSpec | None:
    """``parse_spec(raw)``: a JobSpec that round-trips through ``to_wire``, or a SpecError in JSON."""
    try:
        spec = parse_spec(raw)
    except SpecError as exc:
        assert exc.code == "invalid_spec" and exc.message
        json.dumps({"message": exc.message, "errors": exc.errors})  # what the API answers with
        assert all(set(error) == {"field", "message"} for error in exc.errors)
        return None
    wire = spec.to_wire()
    assert json.loads(json.dumps(wire, allow_nan=False)) == wire
    assert parse_spec(wire) == spec
    return spec


@FUZZ
@given(raw=json_values)
@example(raw=[])
@example(raw={"command": ["a"], "timing": {"execution": math.nan}})
@example(raw={"command": ["\ud800"]})
@example(raw={"command": ["a"], "env": {"\udfff": "x"}})
def test_any_json_value_is_a_spec_or_a_spec_error(raw: Any) -> None:
    """Random JSON, lone surrogates, NaN, huge numbers: a valid spec or a SpecError."""
    check_spec(raw)


@fuzz(2)
@given(raw=mutated(SPEC, SPEC_FIELDS))
def test_a_valid_spec_with_fields_mutated_is_a_spec_or_a_spec_error(raw: dict[str, Any]) -> None:
    """A full spec (every input and output kind) with one to three fields changed at any depth."""
    check_spec(raw)


@FUZZ
@given(
    text=st.one_of(
        deeply_nested('{"command":["a"],"env":@}'),
        deeply_nested('{"command":@}'),
        deeply_nested('{"command":["a"],"inputs":[{"kind":"inline","path":"a","content_b64":@}]}'),
    )
)
def test_a_deeply_nested_spec_is_a_spec_error(text: str) -> None:
    """Specs nested hundreds to thousands deep, parsed as the API parses a body."""
    try:
        raw = json.loads(text)
    except RecursionError:
        return  # the JSON decoder's own limit: the API answers it before the spec is looked at
    assert check_spec(raw) is None


@FUZZ
@given(
    command=st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20), min_size=1),
    env=st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True).filter(
            lambda n: not n.startswith("GRID_") and n != "PORT"
        ),
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10),
        max_size=4,
    ),
    execution=st.floats(min_value=0.001, max_value=86400),
    cpu=st.floats(min_value=0.01, max_value=256),
    memory_mb=st.integers(16, 1024 * 1024),
    streaming=st.booleans(),
    max_attempts=st.integers(1, 10),
)
def test_valid_specs_round_trip_through_the_wire(
    command: list[str],
    env: dict[str, str],
    execution: float,
    cpu: float,
    memory_mb: int,
    streaming: bool,
    max_attempts: int,
) -> None:
    """Any valid spec, as a client sends it (``to_wire``), parses back to itself, through JSON too."""
    spec = JobSpec(
        command=command,
        env=env,
        timing={"execution": execution},
        limits={"cpu": cpu, "memory_mb": memory_mb},
        streaming=streaming,
        streaming_public_key=CLIENT.hotkey if streaming else None,
        max_attempts=max_attempts,
    )
    assert check_spec(json.loads(json.dumps(spec.to_wire()))) == spec


@FUZZ
@given(
    hotkey=hex_strings(64),
    job_id=hostile_text,
    spec=json_values,
    signature=hex_strings(128),
)
@example(hotkey=CLIENT.hotkey, job_id=JOB_ID, spec={"command": ["\udc00"]}, signature="00" * 64)
@example(hotkey=CLIENT.hotkey, job_id="\ud800", spec=SPEC, signature="00" * 64)
@example(hotkey=CLIENT.hotkey, job_id=JOB_ID, spec={"a": math.inf}, signature="00" * 64)
def test_verify_job_only_raises_signature_error(hotkey: str, job_id: str, spec: Any, signature: str) -> None:
    """The check every hop runs first, before it parses the spec: only ever a SignatureError."""
    with pytest.raises(SignatureError):
        verify_job(hotkey, job_id, spec, signature)


@FUZZ
@given(raw=mutated(SPEC, SPEC_FIELDS))
def test_a_signature_covers_exactly_the_spec_it_was_made_for(raw: dict[str, Any]) -> None:
    """The client's signature over the spec verifies; over a mutated spec it does not."""
    signature = sign_job(CLIENT, JOB_ID, SPEC)
    verify_job(CLIENT.hotkey, JOB_ID, json.loads(json.dumps(SPEC)), signature)
    if raw != SPEC:
        with pytest.raises(SignatureError):
            verify_job(CLIENT.hotkey, JOB_ID, raw, signature)
