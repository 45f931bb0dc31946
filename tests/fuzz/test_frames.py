"""Fuzzing the frame parser (protocol/messages/): every union, every message model.

Whatever arrives, :func:`~protocol.messages.parse_frame` returns a message of the direction's
union or raises :class:`~protocol.errors.FrameError` with one of its four codes; and a message
it returns can be sent on again: it encodes, and the encoding parses back to the same message.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import TypeAdapter

import protocol.messages as messages
from protocol.errors import FrameError
from protocol.messages import Message, parse_frame, union_adapter
from protocol.messages.base import MAX_FRAME_BYTES

from .conftest import FUZZ, fuzz
from .samples import JOB_ID, MESSAGES
from .strategies import (
    deeply_nested,
    encoded_frames,
    hostile_text,
    json_values,
    mutated,
    nasty_floats,
    nasty_ints,
)

pytestmark = pytest.mark.timeout(120)


def _subclasses(cls: type[Message]) -> list[type[Message]]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def _carries(adapter: TypeAdapter[Any], model: type[Message]) -> bool:
    """Whether the union takes ``model``'s tag (an unknown tag is the only ``unknown_type``)."""
    try:
        parse_frame(json.dumps({"type": model.model_fields["type"].default}), adapter)
    except FrameError as exc:
        return exc.code != "unknown_type"
    return True


FRAME_ERROR_CODES = {"frame_too_large", "bad_json", "unknown_type", "invalid_message"}
DIRECTIONS: dict[str, TypeAdapter[Any]] = {
    name: getattr(messages, name)
    for name in messages.__all__
    if name.isupper() and isinstance(getattr(messages, name), TypeAdapter)
}
MODELS = {
    name: {model for model in _subclasses(Message) if _carries(adapter, model)} for name, adapter in DIRECTIONS.items()
}
TAGS = sorted({m.type for m in MESSAGES})
FIELDS = sorted({field for m in MESSAGES for field in type(m).model_fields})


def check_frame(frame: str | bytes, directions: dict[str, TypeAdapter[Any]] = DIRECTIONS) -> list[Message]:
    """Parse ``frame`` on every direction: a message of its union that round-trips, or a FrameError."""
    accepted = []
    for name, adapter in directions.items():
        try:
            message = parse_frame(frame, adapter)
        except FrameError as exc:
            assert exc.code in FRAME_ERROR_CODES, (name, exc.code, exc.message)
            assert isinstance(exc.message, str) and exc.message
            continue
        assert isinstance(message, Message), (name, message)
        if name in MODELS:
            assert type(message) in MODELS[name], (name, type(message))
        # What was accepted can be relayed: it encodes, and parses back to itself.
        encoded = message.encode()
        assert parse_frame(encoded, adapter) == message, (name, encoded)
        assert parse_frame(encoded.encode(), adapter) == message
        accepted.append(message)
    return accepted


def test_every_model_of_every_direction_has_a_valid_example() -> None:
    """The fuzz covers the ten unions and seeds its mutations with an example of each of their models."""
    assert len(DIRECTIONS) == 10
    assert all(MODELS.values())
    assert set().union(*MODELS.values()) == {type(m) for m in MESSAGES}


@pytest.mark.parametrize("sample", MESSAGES, ids=lambda m: m.type)
def test_every_valid_message_round_trips_as_text_and_bytes(sample: Message) -> None:
    """A valid message's encoding parses back to the same message on every direction that carries it."""
    accepted = check_frame(sample.encode()) + check_frame(sample.encode().encode())
    assert accepted and all(message == sample for message in accepted)


@FUZZ
@given(frame=st.text() | st.binary())
@example(frame=b"\xff\xfe")
@example(frame="\ud800")
@example(frame=b'{"type":"heartbeat"}\xff')
@example(frame="")
def test_random_text_and_bytes_only_raise_frame_error(frame: str | bytes) -> None:
    """Arbitrary text and bytes never crash the parser, on any direction."""
    check_frame(frame)


@FUZZ
@given(frame=encoded_frames(json_values))
@example(frame="NaN")
@example(frame='{"type":"heartbeat","x":NaN}')
@example(frame="1" * 5000)
@example(frame="[" * 100_000)
def test_random_json_in_every_encoding_only_raises_frame_error(frame: str | bytes) -> None:
    """Random JSON values (NaN, huge numbers, lone surrogates), as text, UTF-8, broken UTF-8 or UTF-16."""
    check_frame(frame)


def _typed(tag: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "type": tag}


@FUZZ
@given(
    frame=encoded_frames(
        st.builds(
            _typed,
            st.sampled_from(TAGS) | hostile_text,
            st.dictionaries(st.sampled_from(FIELDS) | hostile_text, json_values, max_size=6),
        )
    )
)
# A status whose free-form detail holds a lone surrogate: accepted, it could not be relayed to clients.
@example(frame='{"type":"job.status","job_id":"j","status":"sent","at":1,"detail":{"a":"\\ud800"}}')
# An overflowing float: accepted as inf, relayed as null, it no longer parsed.
@example(frame='{"type":"job.status","job_id":"j","status":"sent","at":1e400}')
@example(frame='{"type":"job.status","job_id":"j","status":"sent","at":1,"detail":{"a":-Infinity}}')
@example(frame='{"type":"job.initial","job_id":"j","executor_class":"c","timing":{"execution":NaN}}')
def test_right_type_with_fuzzed_fields_only_raises_frame_error(frame: str | bytes) -> None:
    """Objects tagged with every known type (and unknown ones) with random fields of the models' names."""
    check_frame(frame)


@fuzz(2)
@given(data=st.data())
def test_valid_messages_with_fields_mutated_only_raise_frame_error(data: st.DataObject) -> None:
    """Near-valid frames: one to three fields of a valid message replaced, removed or added, at any depth."""
    sample = data.draw(st.sampled_from(MESSAGES), label="sample")
    document = data.draw(mutated(json.loads(sample.encode()), FIELDS), label="document")
    check_frame(data.draw(encoded_frames(st.just(document)), label="frame"))


@FUZZ
@given(
    frame=st.one_of(
        deeply_nested(),
        deeply_nested('{"type":"heartbeat","x":@}'),
        deeply_nested(f'{{"type":"job.status","job_id":"{JOB_ID}","status":"sent","at":1,"detail":{{"a":@}}}}'),
        deeply_nested('{"type":"job.new","job_id":"j","spec":{"a":@},"client_hotkey":"a","client_signature":"b"}'),
        deeply_nested('{"type":"job.full","job_id":"j","spec":@,"client_hotkey":"a","client_signature":"b"}'),
        deeply_nested('{"type":"job.failed","job_id":"j","failure":@}'),
    )
)
# Deep enough to pass the JSON decoder but too deep for pydantic to serialise again (its limit is 255).
@example(
    frame=f'{{"type":"job.status","job_id":"{JOB_ID}","status":"sent","at":1,"detail":{{"a":{"[" * 300}{"]" * 300}}}}}'
)
def test_deeply_nested_frames_only_raise_frame_error(frame: str) -> None:
    """Nesting from 50 to 100 000 levels, at the top or inside a message's free-form fields."""
    check_frame(frame)
    check_frame(frame.encode())


@FUZZ
@given(
    tag_and_field=st.sampled_from(
        [
            ("job.status", "attempt"),
            ("job.status", "at"),
            ("job.initial", "attempt"),
            ("job.reserved", "gateway_port"),
            ("manifest", "classes"),
            ("report.outcome", "blacklisted_until"),
        ]
    ),
    number=nasty_ints | nasty_floats,
)
def test_huge_and_non_finite_numbers_only_raise_frame_error(tag_and_field: tuple[str, str], number: Any) -> None:
    """Integers past 64 bits, 300-digit numbers, overflowing floats, NaN and ±Infinity in numeric fields."""
    tag, field = tag_and_field
    sample = next(m for m in MESSAGES if m.type == tag)
    data = json.loads(sample.encode())
    data[field] = {"cpu.small": {"total": number, "free": 0}} if field == "classes" else number
    check_frame(json.dumps(data))


@pytest.mark.parametrize("model", sorted({type(m) for m in MESSAGES}, key=lambda m: m.__name__))
@fuzz(0.3)
@given(data=st.data())
def test_each_model_decodes_its_own_mutations_or_raises_frame_error(model: type[Message], data: st.DataObject) -> None:
    """Every message model on its own (a one-model union) takes its mutated examples or refuses them."""
    sample = data.draw(st.sampled_from([m for m in MESSAGES if type(m) is model]))
    document = data.draw(mutated(json.loads(sample.encode()), sorted(model.model_fields)))
    check_frame(json.dumps(document), {"only": union_adapter(model)})


def test_a_frame_over_the_size_limit_is_refused_before_parsing() -> None:
    """16 MiB and one byte, as text and as bytes: ``frame_too_large``, whatever it holds."""
    frame = '{"type":"heartbeat","x":"' + "a" * MAX_FRAME_BYTES + '"}'
    for raw in (frame, frame.encode()):
        with pytest.raises(FrameError) as caught:
            parse_frame(raw, messages.VALIDATOR_TO_MINER)
        assert caught.value.code == "frame_too_large"


@FUZZ
@given(
    job_id=st.text(st.characters(codec="utf-8"), min_size=1, max_size=64),
    detail=st.dictionaries(
        st.text(st.characters(codec="utf-8"), max_size=10),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
            lambda children: (
                st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=4,
    ),
    at=st.floats(allow_nan=False, allow_infinity=False),
    attempt=st.integers(0, 1000),
)
def test_valid_status_updates_round_trip(job_id: str, detail: dict[str, Any], at: float, attempt: int) -> None:
    """Any valid ``job.status`` (any Unicode job id, any JSON detail) parses back to itself."""
    message = messages.JobStatusUpdate(job_id=job_id, status="accepted", attempt=attempt, at=at, detail=detail)
    assert check_frame(message.encode(), {"v2f": messages.VALIDATOR_TO_FACILITATOR}) == [message]
