"""protocol.stream_caller: a streaming job's caller trusts the endpoint and checks replies, over plain dict headers.

The replies are made with the gateway's own primitives (protocol.streaming's sign_reply,
encode_frame, Transcript), so each test is one honest reply and what a forger changes in it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from protocol.errors import EndpointTrustError, ProtocolError, ReplyBrokenError, ReplySealError, SignatureError
from protocol.keys import Keypair
from protocol.messages import StreamingEndpoint
from protocol.requests import verify_request
from protocol.stream_caller import (
    WS_UPGRADE_STATUS,
    ReplyCheck,
    SessionCheck,
    StreamCaller,
    StreamTarget,
    check_target,
    is_pinned,
    is_sealed,
    pinned_context,
)
from protocol.streaming import (
    FRAME_DATA,
    FRAME_END,
    FRAMING,
    HEADER_FRAMING,
    HEADER_REPLY_DIGEST,
    HEADER_REPLY_SIGNATURE,
    HEADER_REQUEST_DIGEST,
    REQUEST_PURPOSE,
    WS_DATA_PREFIX,
    WS_SEAL_PREFIX,
    Readiness,
    Transcript,
    cert_fingerprint,
    encode_frame,
    request_digest,
    sign_readiness,
    sign_reply,
    verify_evidence,
)

JOB_ID = "job-caller-1"
MINER = Keypair.generate()
JOB_KEY = Keypair.generate()
CLIENT_KEY = Keypair.generate()


def make_cert_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test job gateway")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


CERT_PEM = make_cert_pem()
CERT_DER = ssl.PEM_cert_to_DER_cert(CERT_PEM)


def make_target(*, job_id: str = JOB_ID, cert_pem: str = CERT_PEM, signer: Keypair = MINER) -> StreamTarget:
    readiness = Readiness(
        job_id=job_id,
        address="127.0.0.1",
        port=8443,
        job_public_key=JOB_KEY.hotkey,
        cert_fingerprint=cert_fingerprint(CERT_DER),
    )
    return StreamTarget(
        job_id=JOB_ID,
        readiness=readiness,
        cert_pem=cert_pem,
        miner_hotkey=MINER.hotkey,
        miner_signature=sign_readiness(signer, readiness),
    )


@pytest.fixture
def caller() -> StreamCaller:
    return StreamCaller(make_target(), CLIENT_KEY)


def signed_request(caller: StreamCaller, method: str = "GET", path: str = "/x") -> dict[str, str]:
    headers: dict[str, str] = {}
    payload = caller.sign(headers, method, path, "", hashlib.sha256(b"").hexdigest())
    # What the gateway checks: the caller's headers verify as a streaming request.
    verify_request(headers, method, path, "", purpose=REQUEST_PURPOSE)
    return payload


def buffered(payload: dict[str, str], status: int, body: bytes, *, job_id: str = JOB_ID) -> dict[str, str]:
    """The headers the gateway puts on a buffered reply."""
    seal = sign_reply(JOB_KEY, job_id, request_digest(payload), status, hashlib.sha256(body).hexdigest())
    return {
        HEADER_REQUEST_DIGEST: seal.request_digest,
        HEADER_REPLY_DIGEST: seal.reply_digest,
        HEADER_REPLY_SIGNATURE: seal.signature,
    }


def check_buffered(caller: StreamCaller, payload: dict[str, str], status: int, headers: dict[str, str], body: bytes):
    check = ReplyCheck(caller, payload, status, headers)
    assert check.feed(body) == [body]
    return check.finish()


# -- the endpoint ----------------------------------------------------------------------------------


def test_a_vouched_endpoint_is_trusted_and_pinned_exactly():
    target = make_target()
    assert check_target(target) == CERT_DER
    context = pinned_context(target)
    assert context.verify_mode == ssl.CERT_REQUIRED and not context.check_hostname
    assert is_pinned(target, CERT_DER)
    assert not is_pinned(target, ssl.PEM_cert_to_DER_cert(make_cert_pem()))
    assert not is_pinned(target, None)


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(make_target(job_id="another-job"), id="readiness-for-another-job"),
        pytest.param(make_target(signer=Keypair.generate()), id="not-the-miners-signature"),
        pytest.param(make_target(cert_pem=make_cert_pem()), id="another-certificate"),
        pytest.param(make_target(cert_pem="not a certificate"), id="not-pem"),
    ],
)
def test_an_endpoint_the_miner_did_not_vouch_for_is_refused(target: StreamTarget):
    with pytest.raises(EndpointTrustError) as error:
        StreamCaller(target, CLIENT_KEY)
    assert isinstance(error.value, SignatureError) and error.value.code == "untrusted_endpoint"


def test_from_endpoint_needs_the_signature_of_the_jobs_miner():
    target = make_target()
    endpoint = StreamingEndpoint(
        readiness=target.readiness,
        cert_pem=target.cert_pem,
        miner_hotkey=target.miner_hotkey,
        miner_signature=target.miner_signature,
    ).model_dump(mode="json")
    assert StreamTarget.from_endpoint(JOB_ID, endpoint, miner_hotkey=MINER.hotkey) == target
    with pytest.raises(EndpointTrustError, match="not by its miner"):
        StreamTarget.from_endpoint(JOB_ID, endpoint, miner_hotkey=Keypair.generate().hotkey)
    with pytest.raises(EndpointTrustError, match="not signed by its miner"):
        StreamTarget.from_endpoint(JOB_ID, endpoint | {"miner_signature": None})


def test_a_subclass_names_its_own_errors():
    class Refused(EndpointTrustError):
        pass

    class Target(StreamTarget):
        trust_error = Refused

    class Caller(StreamCaller):
        trust_error = Refused

    with pytest.raises(Refused):
        Target.from_endpoint(JOB_ID, {"readiness": {}, "cert_pem": ""})
    with pytest.raises(Refused):
        Caller(make_target(signer=Keypair.generate()), CLIENT_KEY)


# -- buffered replies ------------------------------------------------------------------------------


def test_a_buffered_reply_verifies_and_leaves_evidence(caller: StreamCaller):
    payload = signed_request(caller)
    headers = buffered(payload, 200, b"hello")
    assert is_sealed(headers) and not is_sealed({})
    seal, evidence = check_buffered(caller, payload, 200, headers, b"hello")
    assert (seal.status, seal.reply_digest) == (200, hashlib.sha256(b"hello").hexdigest())
    assert list(caller.evidence) == [evidence]
    verify_evidence(evidence)  # the request signature was kept for it: anyone can check the chain


@pytest.mark.parametrize(
    ("change", "code"),
    [
        pytest.param(lambda h, b: (h, b + b"!"), "digest_mismatch", id="body-tampered"),
        pytest.param(
            lambda h, b: (h | {HEADER_REPLY_DIGEST: hashlib.sha256(b + b"!").hexdigest()}, b + b"!"),
            "bad_signature",
            id="body-and-digest-tampered",
        ),
        pytest.param(
            lambda h, b: (h | {HEADER_REPLY_SIGNATURE: Keypair.generate().sign("stream-reply", {"x": 1})}, b),
            "bad_signature",
            id="forged-signature",
        ),
        pytest.param(lambda h, b: (h | {HEADER_REPLY_SIGNATURE: "zz"}, b), "bad_signature", id="garbage-signature"),
        pytest.param(lambda h, b: (h | {HEADER_REQUEST_DIGEST: "0" * 64}, b), "request_mismatch", id="other-request"),
        pytest.param(
            lambda h, b: ({k: v for k, v in h.items() if k != HEADER_REPLY_SIGNATURE}, b),
            "unsigned",
            id="signature-missing",
        ),
    ],
)
def test_a_buffered_reply_not_sealed_as_received_is_refused(caller: StreamCaller, change, code: str):
    payload = signed_request(caller)
    headers, body = change(buffered(payload, 200, b"hello"), b"hello")
    with pytest.raises(ReplySealError) as error:
        check_buffered(caller, payload, 200, headers, body)
    assert (error.value.code, error.value.status) == (code, 200)
    assert not caller.evidence


def test_a_reply_sealed_with_another_status_or_for_another_job_is_refused(caller: StreamCaller):
    payload = signed_request(caller)
    with pytest.raises(ReplySealError) as error:
        check_buffered(caller, payload, 500, buffered(payload, 200, b"ok"), b"ok")
    assert error.value.code == "bad_signature"  # the headers carry no status: the signature covers it
    with pytest.raises(ReplySealError) as error:
        check_buffered(caller, payload, 200, buffered(payload, 200, b"ok", job_id="another-job"), b"ok")
    assert error.value.code == "bad_signature"


def test_a_reply_replayed_onto_a_later_request_is_refused(caller: StreamCaller):
    first = signed_request(caller)
    headers = buffered(first, 200, b"ok")
    check_buffered(caller, first, 200, headers, b"ok")
    second = signed_request(caller)  # same path, another nonce: another request digest
    with pytest.raises(ReplySealError) as error:
        check_buffered(caller, second, 200, headers, b"ok")
    assert error.value.code == "request_mismatch"


# -- framed replies --------------------------------------------------------------------------------


def framed(payload: dict[str, str], chunks: list[bytes], *, complete: bool = True, error: str | None = None) -> bytes:
    digest = hashlib.sha256(b"".join(chunks)).hexdigest()
    seal = sign_reply(JOB_KEY, JOB_ID, request_digest(payload), 200, digest, complete=complete, error=error)
    return b"".join(encode_frame(FRAME_DATA, chunk) for chunk in chunks) + encode_frame(FRAME_END, seal.to_json())


def test_a_framed_reply_fed_in_any_pieces_yields_the_data_and_verifies(caller: StreamCaller):
    payload = signed_request(caller, "POST", "/generate")
    body = framed(payload, [b"one ", b"two ", b"three"])
    check = ReplyCheck(caller, payload, 200, {HEADER_FRAMING: FRAMING})
    data = [piece for i in range(0, len(body), 3) for piece in check.feed(body[i : i + 3])]
    assert b"".join(data) == b"one two three"
    seal, evidence = check.finish()
    assert seal.complete and caller.evidence[-1] == evidence


def test_a_framed_reply_broken_off_is_proved_by_its_seal(caller: StreamCaller):
    payload = signed_request(caller)
    check = ReplyCheck(caller, payload, 200, {HEADER_FRAMING: FRAMING})
    check.feed(framed(payload, [b"partial"], complete=False, error="the job's connection broke"))
    with pytest.raises(ReplyBrokenError) as error:
        check.finish()
    assert isinstance(error.value, ProtocolError) and error.value.error == "the job's connection broke"
    verify_evidence(error.value.evidence)
    assert caller.evidence[-1] == error.value.evidence


def test_a_framed_reply_without_its_end_or_well_formed_frames_is_refused(caller: StreamCaller):
    payload = signed_request(caller)
    with pytest.raises(ReplySealError) as error:
        ReplyCheck(caller, payload, 200, {HEADER_FRAMING: "grid-frames/9"})
    assert error.value.code == "bad_framing"

    check = ReplyCheck(caller, payload, 200, {HEADER_FRAMING: FRAMING})
    check.feed(encode_frame(FRAME_DATA, b"data"))
    with pytest.raises(ReplySealError) as error:
        check.finish()
    assert error.value.code == "no_seal"

    check = ReplyCheck(caller, payload, 200, {HEADER_FRAMING: FRAMING})
    with pytest.raises(ReplySealError) as error:
        check.feed(b"\x07\x00\x00\x00\x01x")
    assert error.value.code == "bad_framing"

    check = ReplyCheck(caller, payload, 200, {HEADER_FRAMING: FRAMING})
    check.feed(encode_frame(FRAME_DATA, b"data") + encode_frame(FRAME_END, b"{not a seal"))
    with pytest.raises(ReplySealError) as error:
        check.finish()
    assert error.value.code == "bad_signature"

    check = ReplyCheck(caller, payload, 200, {HEADER_FRAMING: FRAMING})
    check.feed(framed(payload, [b"honest"]).replace(b"honest", b"HONEST"))  # the data changed under its seal
    with pytest.raises(ReplySealError) as error:
        check.finish()
    assert error.value.code == "digest_mismatch"


# -- websocket sessions ----------------------------------------------------------------------------


def session_seal(payload: dict[str, str], transcript: Transcript, *, job_id: str = JOB_ID) -> str:
    seal = sign_reply(JOB_KEY, job_id, request_digest(payload), WS_UPGRADE_STATUS, transcript.hexdigest())
    return WS_SEAL_PREFIX + seal.to_json().decode()


def test_a_websocket_session_verifies_against_the_transcript(caller: StreamCaller):
    payload = signed_request(caller, "GET", "/ws")
    check, gateway = SessionCheck(caller, payload), Transcript()
    for message in ("hello", b"\x00bin"):
        check.sent(message)
        gateway.add("client", message)
    for message in ("hi", b"\x01"):
        gateway.add("job", message)
        prefix = WS_DATA_PREFIX if isinstance(message, str) else WS_DATA_PREFIX.encode()
        assert check.received(prefix + message) == message
    evidence = check.received(session_seal(payload, gateway))
    assert evidence == caller.evidence[-1]
    verify_evidence(evidence)


def test_a_seal_the_clients_last_message_missed_still_verifies(caller: StreamCaller):
    """The job ended the session while the client's last message was on its way."""
    payload = signed_request(caller, "GET", "/ws")
    check, gateway = SessionCheck(caller, payload), Transcript()
    check.sent("one")
    gateway.add("client", "one")
    check.sent("two")  # never reached the gateway before it sealed
    check.received(session_seal(payload, gateway))


def test_a_session_seal_that_does_not_hold_is_refused(caller: StreamCaller):
    payload = signed_request(caller, "GET", "/ws")
    check, gateway = SessionCheck(caller, payload), Transcript()
    gateway.add("job", "what the job never said")  # the seal covers another transcript
    with pytest.raises(ReplySealError) as error:
        check.received(session_seal(payload, gateway))
    assert (error.value.code, error.value.status) == ("digest_mismatch", WS_UPGRADE_STATUS)

    with pytest.raises(ReplySealError) as error:  # sealed by the job, for another job's session
        SessionCheck(caller, payload).received(session_seal(payload, Transcript(), job_id="another-job"))
    assert error.value.code == "bad_signature"

    other = signed_request(caller, "GET", "/ws")  # a seal from an earlier session, replayed
    with pytest.raises(ReplySealError) as error:
        SessionCheck(caller, other).received(session_seal(payload, Transcript()))
    assert error.value.code == "request_mismatch"

    with pytest.raises(ReplySealError) as error:
        SessionCheck(caller, payload).received("xno known prefix")
    assert error.value.code == "bad_message"

    with pytest.raises(ReplySealError) as error:
        SessionCheck(caller, payload).received(WS_SEAL_PREFIX + "{}")
    assert error.value.code == "bad_signature"


def test_pending_request_signatures_are_bounded(caller: StreamCaller, monkeypatch):
    import protocol.stream_caller as stream_caller

    monkeypatch.setattr(stream_caller, "MAX_PENDING_SIGNATURES", 3)
    payloads = [signed_request(caller) for _ in range(5)]
    assert list(caller._request_signatures) == [p["nonce"] for p in payloads[-3:]]
