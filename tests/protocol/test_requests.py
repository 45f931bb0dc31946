"""Signed client requests: headers, freshness, nonce format, tampering (protocol/requests.py)."""

from __future__ import annotations

import hashlib
import time

import pytest

from protocol.errors import RequestAuthError
from protocol.keys import Keypair
from protocol.requests import (
    HEADER_HOTKEY,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MAX_SKEW_S,
    NonceStore,
    NonceStoreFull,
    SignedRequest,
    sign_request,
    verify_request,
)
from protocol.spec import sign_job

CLIENT = Keypair.generate()
NOW = 1_700_000_000.0
METHOD, PATH, QUERY, BODY = "POST", "/api/v1/jobs/", "wait=1&x=%20y", b'{"command":["true"]}'


def flip_char(text: str, index: int) -> str:
    return text[:index] + chr(ord(text[index]) ^ 0x01) + text[index + 1 :]


def flip_byte(hex_value: str, index: int) -> str:
    raw = bytearray(bytes.fromhex(hex_value))
    raw[index] ^= 0x01
    return raw.hex()


def signed_headers() -> dict[str, str]:
    return sign_request(CLIENT, METHOD, PATH, QUERY, BODY, now=NOW)


def refused(headers: dict[str, str], *, now: float = NOW, **request: object) -> RequestAuthError:
    args = {"method": METHOD, "path": PATH, "query": QUERY, "body": BODY, **request}
    with pytest.raises(RequestAuthError) as info:
        verify_request(headers, args["method"], args["path"], args["query"], args["body"], now=now)  # type: ignore[arg-type]
    return info.value


def test_signed_request_verifies_and_reports_who_sent_it() -> None:
    """A request verified with the headers sign_request made yields the client's hotkey, nonce and timestamp."""
    headers = signed_headers()
    proof = verify_request(headers, METHOD, PATH, QUERY, BODY, now=NOW + 1)
    assert isinstance(proof, SignedRequest)
    assert proof.hotkey == CLIENT.hotkey
    assert proof.nonce == headers[HEADER_NONCE]
    assert proof.timestamp == NOW
    assert repr(proof) == f"<SignedRequest {CLIENT.hotkey[:12]}… nonce={proof.nonce}>"


def test_headers_carry_hotkey_millisecond_timestamp_and_a_fresh_hex_nonce() -> None:
    """sign_request returns the four headers; each call has its own nonce."""
    first, second = signed_headers(), signed_headers()
    assert set(first) == {HEADER_HOTKEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE}
    assert first[HEADER_HOTKEY] == CLIENT.hotkey
    assert first[HEADER_TIMESTAMP] == "1700000000.000"
    assert len(first[HEADER_NONCE]) == 32 and int(first[HEADER_NONCE], 16) >= 0
    assert first[HEADER_NONCE] != second[HEADER_NONCE]


def test_method_case_does_not_matter() -> None:
    """The method is signed upper-cased, so 'post' and 'POST' are the same request."""
    headers = sign_request(CLIENT, "post", PATH, QUERY, BODY, now=NOW)
    verify_request(headers, "POST", PATH, QUERY, BODY, now=NOW)


@pytest.mark.parametrize("skew", [MAX_SKEW_S + 0.001, -(MAX_SKEW_S + 0.001), 3600.0, -3600.0])
def test_timestamp_outside_the_skew_window_either_way_is_stale(skew: float) -> None:
    """A request older than the window, or dated in the future beyond it, is refused as stale_request."""
    error = refused(signed_headers(), now=NOW + skew)
    assert error.code == "stale_request"
    assert error.message == "timestamp is more than 60s away from server time"


@pytest.mark.parametrize("skew", [MAX_SKEW_S, -MAX_SKEW_S, 0.0])
def test_timestamp_at_the_edge_of_the_window_is_accepted(skew: float) -> None:
    """Skew up to and including MAX_SKEW_S in both directions is accepted."""
    verify_request(signed_headers(), METHOD, PATH, QUERY, BODY, now=NOW + skew)


def test_custom_max_skew_is_honoured() -> None:
    """A server may narrow the window."""
    with pytest.raises(RequestAuthError) as info:
        verify_request(signed_headers(), METHOD, PATH, QUERY, BODY, now=NOW + 5, max_skew=1.0)
    assert info.value.code == "stale_request"


@pytest.mark.parametrize("timestamp", ["soon", "nan", "inf", "-inf", "1e400", "0x10"])
def test_timestamp_that_is_not_a_finite_number_is_stale(timestamp: str) -> None:
    """Garbage, NaN and infinite timestamps are refused as stale_request, never accepted."""
    assert refused({**signed_headers(), HEADER_TIMESTAMP: timestamp}).code == "stale_request"


@pytest.mark.parametrize("header", [HEADER_HOTKEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE])
def test_each_missing_header_is_refused_as_missing_signature(header: str) -> None:
    """Dropping any one of the four headers (or sending it empty) is refused with missing_signature."""
    headers = signed_headers()
    absent = {name: value for name, value in headers.items() if name != header}
    error = refused(absent)
    assert error.code == "missing_signature"
    assert error.message == f"missing header(s): {header}"
    assert refused({**headers, header: ""}).code == "missing_signature"


def test_request_without_any_header_names_all_four() -> None:
    """An unsigned request is refused with missing_signature listing every header."""
    error = refused({})
    assert error.code == "missing_signature"
    assert error.message == "missing header(s): X-Grid-Hotkey, X-Grid-Timestamp, X-Grid-Nonce, X-Grid-Signature"


@pytest.mark.parametrize("nonce", ["short", "a" * 7, "a" * 65, "abc-defgh", "abcd efgh", "abcdefg/", "0x123456!"])
def test_nonce_of_the_wrong_length_or_alphabet_is_refused_as_bad_nonce(nonce: str) -> None:
    """Nonces must be 8 to 64 alphanumeric characters."""
    error = refused({**signed_headers(), HEADER_NONCE: nonce})
    assert error.code == "bad_nonce"
    assert error.message == "nonce must be 8-64 alphanumeric characters"


def test_request_signature_with_any_byte_flipped_is_refused() -> None:
    """Flipping any byte of the signature header is refused with bad_signature."""
    headers = signed_headers()
    for index in range(64):
        error = refused({**headers, HEADER_SIGNATURE: flip_byte(headers[HEADER_SIGNATURE], index)})
        assert error.code == "bad_signature", index
        assert error.message == "request signature refused: signature does not verify"


def test_request_under_a_hotkey_with_any_byte_flipped_is_refused() -> None:
    """The signature verifies only under the client's own hotkey."""
    headers = signed_headers()
    for index in range(32):
        assert refused({**headers, HEADER_HOTKEY: flip_byte(CLIENT.hotkey, index)}).code == "bad_signature", index


def test_malformed_hotkey_header_is_refused_as_bad_signature() -> None:
    """A hotkey header that is not a key is reported as bad_signature, with the key problem in the message."""
    error = refused({**signed_headers(), HEADER_HOTKEY: "not-a-key"})
    assert error.code == "bad_signature"
    assert error.message == "request signature refused: hotkey is not hex"


@pytest.mark.parametrize("part", ["method", "path", "query", "body"])
def test_request_with_any_byte_of_the_signed_request_flipped_is_refused(part: str) -> None:
    """Method, path, raw query and body are each covered byte by byte."""
    headers = signed_headers()
    original: str | bytes = {"method": METHOD, "path": PATH, "query": QUERY, "body": BODY}[part]
    for index in range(len(original)):
        if isinstance(original, bytes):
            raw = bytearray(original)
            raw[index] ^= 0x01
            tampered: str | bytes = bytes(raw)
        else:
            tampered = flip_char(original, index)
        assert refused(headers, **{part: tampered}).code == "bad_signature", (part, index)


def test_request_with_an_extra_body_byte_or_a_dropped_query_is_refused() -> None:
    """Appending to the body or dropping the query changes what was signed."""
    headers = signed_headers()
    assert refused(headers, body=BODY + b" ").code == "bad_signature"
    assert refused(headers, query="").code == "bad_signature"


def test_request_with_any_character_of_the_timestamp_flipped_is_refused() -> None:
    """Each changed timestamp is stale if it no longer parses, and otherwise fails the signature even when fresh."""
    headers = signed_headers()
    timestamp = headers[HEADER_TIMESTAMP]
    for index in range(len(timestamp)):
        tampered = flip_char(timestamp, index)
        try:
            now = float(tampered)
        except ValueError:
            assert refused({**headers, HEADER_TIMESTAMP: tampered}).code == "stale_request", tampered
        else:
            # Judge the signature alone: make the tampered time look perfectly fresh.
            assert refused({**headers, HEADER_TIMESTAMP: tampered}, now=now).code == "bad_signature", tampered


def test_request_with_any_character_of_the_nonce_flipped_is_refused() -> None:
    """Each changed nonce is either malformed (bad_nonce) or fails the signature (bad_signature)."""
    headers = signed_headers()
    nonce = headers[HEADER_NONCE]
    for index in range(len(nonce)):
        tampered = flip_char(nonce, index)
        expected = "bad_signature" if tampered.isalnum() else "bad_nonce"
        assert refused({**headers, HEADER_NONCE: tampered}).code == expected, tampered


def test_request_signed_by_another_key_under_the_clients_hotkey_is_refused() -> None:
    """Someone else's valid signature presented under the client's hotkey is refused."""
    forged = sign_request(Keypair.generate(), METHOD, PATH, QUERY, BODY, now=NOW)
    headers = {**forged, HEADER_HOTKEY: CLIENT.hotkey}
    assert refused(headers).code == "bad_signature"


def test_signature_over_the_same_request_for_another_purpose_is_refused() -> None:
    """Domain separation: the exact request payload signed for any other purpose cannot authenticate it."""
    headers = signed_headers()
    payload = {
        "method": METHOD,
        "path": PATH,
        "query": QUERY,
        "body_sha256": hashlib.sha256(BODY).hexdigest(),
        "timestamp": headers[HEADER_TIMESTAMP],
        "nonce": headers[HEADER_NONCE],
    }
    assert CLIENT.sign("request", payload) == headers[HEADER_SIGNATURE]  # the payload is rebuilt exactly
    for purpose in ("job-spec", "ws-auth-client", "ws-auth-server", "request-v2"):
        assert refused({**headers, HEADER_SIGNATURE: CLIENT.sign(purpose, payload)}).code == "bad_signature"


def test_job_signature_is_not_a_request_signature() -> None:
    """A client's job signature presented as a request signature is refused."""
    headers = {**signed_headers(), HEADER_SIGNATURE: sign_job(CLIENT, "job", {"command": ["true"]})}
    assert refused(headers).code == "bad_signature"


def test_a_nonce_store_refuses_a_nonce_twice_within_its_window() -> None:
    store = NonceStore(ttl=60.0, capacity=10)
    store.claim("abcdefgh")
    with pytest.raises(RequestAuthError) as caught:
        store.claim("abcdefgh")
    assert (caught.value.code, caught.value.message) == ("replayed", "this nonce was already used")
    assert store.seen("abcdefgh") and not store.seen("12345678")


def test_a_nonce_store_forgets_after_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    store = NonceStore(ttl=1.0, capacity=10)
    store.claim("abcdefgh")
    later = time.monotonic() + 2.0
    monkeypatch.setattr(time, "monotonic", lambda: later)
    store.claim("abcdefgh")
    assert len(store) == 1


def test_a_full_nonce_store_refuses_new_nonces_as_busy() -> None:
    store = NonceStore(ttl=60.0, capacity=2)
    store.claim("aaaaaaaa")
    store.claim("bbbbbbbb")
    with pytest.raises(NonceStoreFull) as caught:
        store.claim("cccccccc")
    assert caught.value.code == "busy"


def test_the_pre_checks_refuse_what_verify_request_refuses_before_the_body():
    """signature_headers, check_nonce and check_fresh: what a server checks before reading a body."""
    from protocol.requests import SIGNATURE_HEADERS, check_fresh, check_nonce, signature_headers

    headers = {"X-Grid-Hotkey": "k", "X-Grid-Timestamp": "100.000", "X-Grid-Nonce": "abcdefgh", "X-Grid-Signature": "s"}
    assert signature_headers(headers) == ("k", "100.000", "abcdefgh", "s")
    assert tuple(headers) == SIGNATURE_HEADERS
    with pytest.raises(RequestAuthError) as error:
        signature_headers(headers | {"X-Grid-Nonce": ""})
    assert (error.value.code, error.value.message) == ("missing_signature", "missing header(s): X-Grid-Nonce")
    check_nonce("abcdefgh")
    for nonce in ("short", "x" * 65, "abc-defgh"):
        with pytest.raises(RequestAuthError) as error:
            check_nonce(nonce)
        assert error.value.code == "bad_nonce"
    assert check_fresh("100.000", 130.0) == 100.0
    for timestamp, now in (("100", 161.0), ("100", 39.0), ("soon", 100.0), ("nan", 100.0)):
        with pytest.raises(RequestAuthError) as error:
            check_fresh(timestamp, now)
        assert error.value.code == "stale_request"
