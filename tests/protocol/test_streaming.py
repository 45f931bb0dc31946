"""Signed replies, framing, readiness and evidence of streaming jobs (protocol/streaming.py)."""

from __future__ import annotations

import hashlib

import pytest

from protocol.errors import FrameError, SignatureError
from protocol.keys import Keypair
from protocol.requests import request_payload, sign_request, verify_request
from protocol.streaming import (
    FRAME_DATA,
    FRAME_END,
    REQUEST_PURPOSE,
    Evidence,
    FrameDecoder,
    Readiness,
    Transcript,
    encode_frame,
    request_digest,
    sign_readiness,
    sign_reply,
    verify_evidence,
    verify_readiness,
    verify_reply,
)

MINER, JOB, CLIENT = Keypair.generate(), Keypair.generate(), Keypair.generate()
READINESS = Readiness(
    job_id="job-1", address="127.0.0.1", port=40001, job_public_key=JOB.hotkey, cert_fingerprint="ab" * 32
)


def signed_request() -> tuple[dict[str, str], str]:
    headers = sign_request(CLIENT, "POST", "/echo", "a=1", b"hello", purpose=REQUEST_PURPOSE)
    payload = verify_request(headers, "POST", "/echo", "a=1", b"hello", purpose=REQUEST_PURPOSE).payload
    return payload, headers["X-Grid-Signature"]


def test_a_stream_request_signature_is_not_a_rest_request_signature() -> None:
    headers = sign_request(CLIENT, "GET", "/x", "", b"", purpose=REQUEST_PURPOSE)
    with pytest.raises(Exception, match="signature refused"):
        verify_request(headers, "GET", "/x", "", b"")


def test_a_precomputed_body_digest_stands_for_the_body() -> None:
    digest = hashlib.sha256(b"streamed body").hexdigest()
    headers = sign_request(CLIENT, "PUT", "/up", "", purpose=REQUEST_PURPOSE, body_sha256=digest)
    verify_request(headers, "PUT", "/up", "", b"streamed body", purpose=REQUEST_PURPOSE)
    with pytest.raises(Exception, match="signature refused"):
        verify_request(headers, "PUT", "/up", "", b"other body", purpose=REQUEST_PURPOSE)


def test_the_request_digest_changes_with_every_signed_field() -> None:
    base = request_payload("GET", "/a", "q=1", "00" * 32, "1.000", "n0nce000")
    digests = {request_digest(base)}
    for field, value in [
        ("method", "POST"),
        ("path", "/b"),
        ("query", "q=2"),
        ("body_sha256", "11" * 32),
        ("timestamp", "2.000"),
        ("nonce", "n0nce001"),
    ]:
        digests.add(request_digest({**base, field: value}))
    assert len(digests) == 7


def test_a_reply_seal_verifies_and_every_field_is_covered() -> None:
    seal = sign_reply(JOB, "job-1", "aa" * 32, 200, "bb" * 32)
    verify_reply(JOB.hotkey, "job-1", seal)
    with pytest.raises(SignatureError):
        verify_reply(JOB.hotkey, "job-2", seal)
    for change in [
        {"status": 500},
        {"reply_digest": "cc" * 32},
        {"request_digest": "dd" * 32},
        {"complete": False},
        {"error": "boom"},
    ]:
        with pytest.raises(SignatureError):
            verify_reply(JOB.hotkey, "job-1", seal.model_copy(update=change))
    with pytest.raises(SignatureError):
        verify_reply(MINER.hotkey, "job-1", seal)


def test_frames_decode_whatever_the_split() -> None:
    seal = sign_reply(JOB, "job-1", "aa" * 32, 200, "bb" * 32)
    body = (
        encode_frame(FRAME_DATA, b"hello ")
        + encode_frame(FRAME_DATA, b"world")
        + encode_frame(FRAME_END, seal.to_json())
    )
    for step in (1, 2, 5, 7, len(body)):
        decoder, frames = FrameDecoder(), []
        for start in range(0, len(body), step):
            frames += decoder.feed(body[start : start + step])
        assert frames == [(FRAME_DATA, b"hello "), (FRAME_DATA, b"world"), (FRAME_END, seal.to_json())]
        assert decoder.ended and decoder.pending == 0


@pytest.mark.parametrize(
    "body",
    [
        b"\x07\x00\x00\x00\x01x",  # unknown kind
        b"\x00\xff\xff\xff\xff",  # over the frame size limit
        encode_frame(FRAME_END, b"{}") + b"\x00",  # data after the end
    ],
)
def test_malformed_framing_is_refused(body: bytes) -> None:
    with pytest.raises(FrameError):
        FrameDecoder().feed(body)


def test_the_transcript_tells_direction_type_and_order_apart() -> None:
    def digest(*messages: tuple[str, str | bytes]) -> str:
        transcript = Transcript()
        for direction, message in messages:
            transcript.add(direction, message)  # type: ignore[arg-type]
        return transcript.hexdigest()

    base = digest(("client", "hi"), ("job", "HI"))
    assert base == digest(("client", "hi"), ("job", "HI"))
    assert base != digest(("job", "hi"), ("client", "HI"))
    assert base != digest(("client", b"hi"), ("job", "HI"))
    assert base == digest(("job", "HI"), ("client", "hi")), "messages crossing on the wire change nothing"
    assert digest(("client", "a"), ("client", "b")) != digest(("client", "b"), ("client", "a"))
    assert digest(("client", "ab"), ("client", "c")) != digest(("client", "a"), ("client", "bc"))


def test_readiness_is_signed_by_the_miner_over_every_field() -> None:
    signature = sign_readiness(MINER, READINESS)
    verify_readiness(MINER.hotkey, READINESS, signature)
    for change in [
        {"port": 40002},
        {"address": "10.0.0.1"},
        {"job_public_key": CLIENT.hotkey},
        {"cert_fingerprint": "cd" * 32},
        {"job_id": "job-2"},
    ]:
        with pytest.raises(SignatureError):
            verify_readiness(MINER.hotkey, READINESS.model_copy(update=change), signature)


def make_evidence() -> Evidence:
    payload, signature = signed_request()
    seal = sign_reply(JOB, "job-1", request_digest(payload), 200, hashlib.sha256(b"hello").hexdigest())
    return Evidence(
        job_id="job-1",
        request=payload,
        client_streaming_key=CLIENT.hotkey,
        request_signature=signature,
        seal=seal,
        readiness=READINESS,
        miner_hotkey=MINER.hotkey,
        miner_signature=sign_readiness(MINER, READINESS),
        reply_body_sha256=seal.reply_digest,
    )


def test_evidence_verifies_and_survives_json() -> None:
    evidence = make_evidence()
    verify_evidence(evidence)
    verify_evidence(Evidence.model_validate_json(evidence.model_dump_json()))


@pytest.mark.parametrize(
    "change",
    [
        {"job_id": "job-2"},
        {"miner_hotkey": Keypair.generate().hotkey},
        {"request": {"method": "GET"}},
        {"seal": {"status": 201}},
        {"readiness": {"job_public_key": Keypair.generate().hotkey}},
        {"client_streaming_key": Keypair.generate().hotkey},
        {"request_signature": "00" * 64},
        {"reply_body_sha256": "ee" * 32},
    ],
)
def test_evidence_with_any_link_altered_is_refused(change: dict) -> None:
    evidence = make_evidence()
    data = evidence.model_dump(mode="json")
    for key, value in change.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    with pytest.raises(SignatureError):
        verify_evidence(Evidence.model_validate(data))
