"""Fuzzing the signed documents parties fetch from each other (registry, receipts, scores, reports).

A validator reads a miner's receipt pages, every party reads the facilitator's registry, the
facilitator reads validators' score sheets and clients' malicious-miner reports. Each is parsed
with its pydantic model (``ValidationError``) and then checked with its ``verify`` function
(``SignatureError``); nothing else escapes, and nothing altered ever verifies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from protocol.errors import SignatureError
from protocol.receipts import Receipt, countersign, verify_page, verify_receipt
from protocol.registry import Neuron, load_static_registry, verify_registry
from protocol.reports import check_report
from protocol.scores import verify_scores

from .conftest import FUZZ, fuzz
from .samples import FACILITATOR, MINER, PAGE, RECEIPT, REGISTRY, REPORT, SCORES, VALIDATOR
from .strategies import encoded_frames, json_values, mutated, nasty_floats, nasty_ints

pytestmark = pytest.mark.timeout(120)

DOCUMENTS: dict[str, tuple[BaseModel, Callable[[Any], None]]] = {
    "registry": (REGISTRY, lambda doc: verify_registry(doc, FACILITATOR.hotkey)),
    "receipt": (RECEIPT, lambda doc: verify_receipt(doc, miner_hotkey=MINER.hotkey)),
    "page": (PAGE, lambda doc: verify_page(doc, MINER.hotkey)),
    "scores": (SCORES, lambda doc: verify_scores(doc, VALIDATOR.hotkey)),
    "report": (REPORT, check_report),
}


def _fields(model: type[BaseModel]) -> set[str]:
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                names |= _fields(candidate)
    return names


def check_document(name: str, raw: str | bytes) -> BaseModel | None:
    """Parse ``raw`` as document ``name`` and verify it: the sample itself, or a documented error."""
    sample, verify = DOCUMENTS[name]
    model = type(sample)
    try:
        document = model.model_validate_json(raw)
    except ValidationError:
        return None
    assert model.model_validate_json(document.model_dump_json()) == document
    try:
        verify(document)
    except SignatureError as exc:
        assert exc.code and exc.message
        return None
    return document


@pytest.mark.parametrize("name", DOCUMENTS)
def test_each_signed_document_verifies_after_a_round_trip(name: str) -> None:
    """The samples, through their JSON, parse back to themselves and verify."""
    sample, _ = DOCUMENTS[name]
    assert check_document(name, sample.model_dump_json()) == sample
    assert check_document(name, sample.model_dump_json().encode()) == sample


@pytest.mark.parametrize("name", DOCUMENTS)
@fuzz(0.7)
@given(data=st.data())
def test_an_altered_document_never_verifies(name: str, data: st.DataObject) -> None:
    """One to three fields changed at any depth: a ValidationError or a SignatureError, never a pass."""
    sample, _ = DOCUMENTS[name]
    document = data.draw(mutated(json.loads(sample.model_dump_json()), sorted(_fields(type(sample)))))
    frame = data.draw(encoded_frames(st.just(document)))
    parsed = check_document(name, frame)
    assert parsed is None or parsed == sample


@pytest.mark.parametrize("name", DOCUMENTS)
@FUZZ
@given(frame=encoded_frames(json_values) | st.binary(max_size=50) | st.text(max_size=50))
def test_random_json_is_never_a_document(name: str, frame: str | bytes) -> None:
    """Random JSON, text and bytes (NaN, huge numbers, lone surrogates): a ValidationError."""
    assert check_document(name, frame) is None


@FUZZ
@given(
    field=st.sampled_from(["at", "duration_s", "attempt"]),
    value=nasty_ints | nasty_floats,
)
@example(field="at", value=float("nan"))
@example(field="attempt", value=2**63)
def test_huge_and_non_finite_numbers_in_a_receipt_are_refused_or_fail_verification(field: str, value: Any) -> None:
    """Receipt numbers a miner stores in an integer or float column: out of range is a ValidationError."""
    document = json.loads(RECEIPT.model_dump_json())
    assume(value != document["payload"][field])  # 2.0 for an attempt of 2 is the signed receipt itself
    document["payload"][field] = value
    try:
        text = json.dumps(document)
    except ValueError:
        return
    parsed = check_document("receipt", text)
    assert parsed is None


@FUZZ
@given(document=mutated(json.loads(RECEIPT.model_dump_json()), sorted(_fields(Receipt))))
def test_a_miner_countersigns_only_what_its_validator_signed(document: dict[str, Any]) -> None:
    """``countersign`` on a receipt from the wire: a SignatureError unless it is the validator's own."""
    try:
        receipt = Receipt.model_validate(document)
    except ValidationError:
        return
    try:
        countersigned = countersign(MINER, receipt)
    except SignatureError:
        return
    assert countersigned.payload == RECEIPT.payload


@FUZZ
@given(content=st.one_of(encoded_frames(json_values), st.binary(max_size=40)))
@example(content=b"\xff\xfe")
@example(content="[" * 100_000)
@example(content='[{"hotkey":"' + "ab" * 32 + '","role":"miner","stake":NaN}]')
def test_a_static_registry_file_is_neurons_or_a_value_error(tmp_path_factory: Any, content: str | bytes) -> None:
    """Whatever the file holds: a list of neurons or a ValueError naming the file."""
    path = Path(tmp_path_factory.getbasetemp()) / "fuzzed-neurons.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        neurons = load_static_registry(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return
    assert all(isinstance(neuron, Neuron) for neuron in neurons)


def test_static_registry_round_trip(tmp_path: Path) -> None:
    """Neurons written as a static registry file load back exactly."""
    path = tmp_path / "neurons.json"
    path.write_text(json.dumps([neuron.model_dump(mode="json") for neuron in REGISTRY.neurons]))
    assert load_static_registry(path) == REGISTRY.neurons
