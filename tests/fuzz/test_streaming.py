"""Fuzzing what a streaming client reads from a job's gateway (protocol/streaming.py).

The framed reply body (:class:`~protocol.streaming.FrameDecoder`), the END frame's and the
websocket's seal (:class:`~protocol.streaming.ReplySeal` from JSON), the seal headers of a
buffered reply, and evidence (:class:`~protocol.streaming.Evidence`, checked by anyone with
:func:`~protocol.streaming.verify_evidence`). Each either yields a valid value or raises its
module's error: ``FrameError(bad_framing)``, a pydantic ``ValidationError``, ``SignatureError``.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.errors import FrameError, SignatureError
from protocol.streaming import (
    FRAME_DATA,
    FRAME_END,
    MAX_FRAME_BYTES,
    WS_SEAL_PREFIX,
    Evidence,
    FrameDecoder,
    Readiness,
    ReplySeal,
    encode_frame,
    verify_evidence,
    verify_readiness,
    verify_reply,
)

from .conftest import FUZZ, fuzz
from .samples import EVIDENCE, JOB_ID, JOB_KEY, MINER, READINESS
from .strategies import encoded_frames, hex_strings, json_values, mutated, nasty_ints

pytestmark = pytest.mark.timeout(120)

EVIDENCE_FIELDS = sorted(
    {*Evidence.model_fields, *ReplySeal.model_fields, *Readiness.model_fields, "method", "path", "nonce"}
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[start:end] for start, end in zip([0, *points], [*points, len(data)], strict=True)]


def decode(chunks: list[bytes]) -> list[tuple[int, bytes]] | None:
    """Feed ``chunks`` to a decoder: the frames, or ``None`` after a ``bad_framing`` FrameError."""
    decoder = FrameDecoder()
    frames = []
    try:
        for chunk in chunks:
            frames += decoder.feed(chunk)
    except FrameError as exc:
        assert exc.code == "bad_framing" and exc.message
        return None
    assert all(kind in (FRAME_DATA, FRAME_END) for kind, _ in frames)
    assert FRAME_END not in [kind for kind, _ in frames[:-1]], "nothing is decoded after the END frame"
    return frames


@FUZZ
@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=6))
@example(data=struct.pack(">BI", 2, 0), cuts=[])
@example(data=struct.pack(">BI", FRAME_DATA, MAX_FRAME_BYTES + 1), cuts=[])
@example(data=struct.pack(">BI", FRAME_DATA, 2**32 - 1) + b"x", cuts=[1, 2, 3])
@example(data=encode_frame(FRAME_END, b"{}") + b"\x00", cuts=[])
def test_random_bytes_decode_to_frames_or_bad_framing(data: bytes, cuts: list[int]) -> None:
    """Any body, cut anywhere: well-formed frames or FrameError ``bad_framing``, never a hang or a crash."""
    decode(_chunks(data, cuts))


@FUZZ
@given(
    payloads=st.lists(st.binary(max_size=100), max_size=8),
    end=st.none() | st.binary(max_size=100),
    cuts=st.lists(st.integers(0, 1200), max_size=10),
    trailing=st.binary(max_size=5),
)
def test_framed_bodies_round_trip_however_they_are_cut(
    payloads: list[bytes], end: bytes | None, cuts: list[int], trailing: bytes
) -> None:
    """DATA frames and an END frame come back exactly, cut at any points; bytes after END are refused."""
    frames = [(FRAME_DATA, payload) for payload in payloads] + ([(FRAME_END, end)] if end is not None else [])
    body = b"".join(encode_frame(kind, payload) for kind, payload in frames)
    assert decode(_chunks(body, cuts)) == frames
    if end is not None and trailing:
        assert decode([body, trailing]) is None
        assert decode([body + trailing]) is None


seal_documents = st.one_of(
    json_values,
    mutated(json.loads(EVIDENCE.seal.to_json()), sorted(ReplySeal.model_fields)),
    st.builds(lambda status: {**json.loads(EVIDENCE.seal.to_json()), "status": status}, nasty_ints),
)


@FUZZ
@given(frame=encoded_frames(seal_documents))
@example(frame='{"request_digest":"a","status":' + "9" * 4000 + ',"reply_digest":"b","signature":"c"}')
@example(frame='{"request_digest":"a","status":1e400,"reply_digest":"b","signature":"c"}')
@example(frame='{"request_digest":"\\ud800","status":200,"reply_digest":"b","signature":"c"}')
def test_an_end_frame_or_websocket_seal_is_a_seal_or_a_validation_error(frame: str | bytes) -> None:
    """The END frame's payload (and a websocket ``"s"`` message) parse to a seal or raise ValidationError;
    a parsed seal then verifies or raises SignatureError."""
    for raw in (frame, WS_SEAL_PREFIX + frame if isinstance(frame, str) else None):
        if raw is None:
            continue
        text = raw[len(WS_SEAL_PREFIX) :] if raw is not frame else raw
        try:
            seal = ReplySeal.model_validate_json(text)
        except ValidationError:
            continue
        assert ReplySeal.model_validate_json(seal.to_json()) == seal
        try:
            verify_reply(JOB_KEY.hotkey, JOB_ID, seal)
        except SignatureError:
            continue
        assert seal == EVIDENCE.seal


@FUZZ
@given(
    signature=hex_strings(128),
    reply_digest=hex_strings(64),
    request_digest=hex_strings(64),
    status=nasty_ints,
)
@example(signature="zz" * 64, reply_digest="", request_digest="", status=200)
@example(signature="00" * 64, reply_digest="a", request_digest="b", status=10**4400)
def test_seal_headers_of_a_buffered_reply_only_raise_signature_error(
    signature: str, reply_digest: str, request_digest: str, status: int
) -> None:
    """A buffered reply's ``X-Grid-Reply-Signature`` / ``-Digest`` headers, any text: SignatureError."""
    seal = ReplySeal(request_digest=request_digest, status=status, reply_digest=reply_digest, signature=signature)
    with pytest.raises(SignatureError):
        verify_reply(JOB_KEY.hotkey, JOB_ID, seal)


def check_evidence(document: Any) -> Evidence | None:
    """Evidence from JSON: a valid value that verifies or raises SignatureError, or a ValidationError."""
    try:
        evidence = Evidence.model_validate_json(json.dumps(document))
    except (ValidationError, ValueError):
        return None
    assert Evidence.model_validate_json(evidence.model_dump_json()) == evidence
    try:
        verify_evidence(evidence)
    except SignatureError as exc:
        assert exc.message
        return None
    return evidence


def test_valid_evidence_verifies_after_a_round_trip() -> None:
    """The sample evidence verifies, and so does its JSON read back."""
    assert check_evidence(json.loads(EVIDENCE.model_dump_json())) == EVIDENCE


@fuzz(2)
@given(document=mutated(json.loads(EVIDENCE.model_dump_json()), EVIDENCE_FIELDS))
@example(document={**json.loads(EVIDENCE.model_dump_json()), "request": {"path": "\ud800"}})
def test_mutated_evidence_never_verifies_and_only_raises_the_documented_errors(document: dict[str, Any]) -> None:
    """Evidence with one to three fields changed at any depth: refused by validation or by a signature."""
    evidence = check_evidence(document)
    if evidence is not None:  # only the unsigned body digest may go: the seal still covers the reply
        assert evidence.model_copy(update={"reply_body_sha256": EVIDENCE.reply_body_sha256}) == EVIDENCE


@FUZZ
@given(
    document=mutated(json.loads(READINESS.model_dump_json()), sorted(Readiness.model_fields)),
    signature=hex_strings(128),
)
def test_a_miner_signed_readiness_only_raises_validation_or_signature_errors(
    document: dict[str, Any], signature: str
) -> None:
    """Readiness as a client reads it from ``job.status``: a ValidationError, or a SignatureError on check."""
    try:
        readiness = Readiness.model_validate(document)
    except ValidationError:
        return
    with pytest.raises(SignatureError):
        verify_readiness(MINER.hotkey, readiness, signature)
