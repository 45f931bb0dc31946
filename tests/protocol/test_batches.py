"""Frame batches (protocol/messages/base.py ``join_frames``, ``parse_frames``): several frames in one
websocket message, each parsed as if it had come alone."""

from __future__ import annotations

import json

import pytest

from protocol.errors import FrameError
from protocol.messages import VALIDATOR_TO_FACILITATOR, Error, Heartbeat, JobReceived, parse_frame
from protocol.messages.base import MAX_BATCH, MAX_BATCH_BYTES, MAX_FRAME_BYTES, join_frames, parse_frames

RECEIVED = [JobReceived(job_id=f"job-{n}") for n in range(5)]


def test_a_single_frame_is_one_message_as_before() -> None:
    frame = RECEIVED[0].encode()
    assert list(join_frames([frame])) == [frame]
    assert parse_frames(frame, VALIDATOR_TO_FACILITATOR) == [RECEIVED[0]]
    assert parse_frames(frame.encode(), VALIDATOR_TO_FACILITATOR) == [RECEIVED[0]]


def test_queued_frames_go_as_one_batch_and_come_back_in_order() -> None:
    joined = list(join_frames([message.encode() for message in RECEIVED]))
    assert len(joined) == 1 and json.loads(joined[0])[0]["job_id"] == "job-0"
    assert parse_frames(joined[0], VALIDATOR_TO_FACILITATOR) == RECEIVED


def test_join_frames_of_nothing_is_no_message() -> None:
    assert list(join_frames([])) == []


def test_a_batch_is_cut_at_max_batch_frames() -> None:
    frames = [Heartbeat().encode()] * (2 * MAX_BATCH + 1)
    joined = list(join_frames(frames))
    assert [len(parse_frames(text, VALIDATOR_TO_FACILITATOR)) for text in joined] == [MAX_BATCH, MAX_BATCH, 1]


def test_a_batch_is_cut_before_max_batch_bytes_and_a_big_frame_goes_alone() -> None:
    big = Error(code="x", message="x" * (MAX_BATCH_BYTES // 2)).encode()
    huge = Error(code="y", message="y" * (MAX_BATCH_BYTES + 10)).encode()
    small = RECEIVED[0].encode()
    joined = list(join_frames([big, big, small, huge, small]))
    assert all(len(text) <= MAX_BATCH_BYTES for text in joined[:2])
    assert joined[2] == huge  # alone, as it would have gone without batches
    parsed = [message for text in joined for message in parse_frames(text, VALIDATOR_TO_FACILITATOR)]
    assert [getattr(message, "code", "small") for message in parsed] == ["x", "x", "small", "y", "small"]


@pytest.mark.parametrize("count", [0, MAX_BATCH + 1])
def test_a_batch_of_no_frames_or_too_many_is_refused_whole(count: int) -> None:
    with pytest.raises(FrameError) as info:
        parse_frames(json.dumps([{"type": "heartbeat"}] * count), VALIDATOR_TO_FACILITATOR)
    assert info.value.code == "bad_json"
    assert info.value.message == f"a batch holds 1 to {MAX_BATCH} frames, not {count}"


def test_a_bad_frame_in_a_batch_is_its_own_error_and_the_others_still_count() -> None:
    batch = f'[{RECEIVED[0].encode()}, 7, {{"type": "job.bogus"}}, {{"type": "job.received"}}, {RECEIVED[1].encode()}]'
    parsed = parse_frames(batch, VALIDATOR_TO_FACILITATOR)
    assert parsed[0] == RECEIVED[0] and parsed[4] == RECEIVED[1]
    assert [error.code for error in parsed[1:4]] == ["bad_json", "unknown_type", "invalid_message"]
    assert all(isinstance(error, FrameError) for error in parsed[1:4])


def test_a_batch_is_never_nested() -> None:
    parsed = parse_frames(f"[[{RECEIVED[0].encode()}]]", VALIDATOR_TO_FACILITATOR)
    assert len(parsed) == 1 and isinstance(parsed[0], FrameError) and parsed[0].code == "bad_json"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("[1, 2", "bad_json"),
        ('"text"', "bad_json"),
        ("7", "bad_json"),
        (b"\xff[]", "bad_json"),
        ("[" + " " * MAX_FRAME_BYTES + "]", "frame_too_large"),
    ],
)
def test_a_message_that_is_neither_frame_nor_batch_is_refused_whole(frame: str | bytes, code: str) -> None:
    with pytest.raises(FrameError) as info:
        parse_frames(frame, VALIDATOR_TO_FACILITATOR)
    assert info.value.code == code


def test_parse_frame_still_takes_one_frame_only() -> None:
    """The handshake reads with parse_frame: a batch there is no frame."""
    with pytest.raises(FrameError) as info:
        parse_frame(f"[{RECEIVED[0].encode()}]", VALIDATOR_TO_FACILITATOR)
    assert info.value.code == "bad_json"
