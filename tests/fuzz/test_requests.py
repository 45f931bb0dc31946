"""Fuzzing signed client requests (protocol/requests.py): every header, the clock, nonces, hex.

:func:`~protocol.requests.verify_request` reads four headers a stranger controls. Whatever they
hold, it returns the proven request or raises :class:`~protocol.errors.RequestAuthError` with a
known code; a request signed by the SDK verifies, and changing any one thing about it does not.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from protocol.errors import RequestAuthError
from protocol.requests import (
    HEADER_HOTKEY,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    NonceStore,
    sign_request,
    verify_request,
)
from protocol.streaming import REQUEST_PURPOSE

from .conftest import FUZZ
from .samples import CLIENT, NOW
from .strategies import hex_strings, hostile_text

pytestmark = pytest.mark.timeout(120)

CODES = {"missing_signature", "bad_nonce", "stale_request", "bad_signature"}
HEADERS = (HEADER_HOTKEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)

timestamps = st.one_of(
    st.floats().map(str),
    st.floats(NOW - 120, NOW + 120).map(lambda t: f"{t:.3f}"),
    st.integers().map(str),
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e999", "1_700_000_000", "0x10", "١٧٠٠٠٠٠٠٠٠", "9" * 5000]),
    hostile_text,
)
nonces = st.one_of(
    st.text(string.ascii_letters + string.digits, min_size=6, max_size=70),
    st.sampled_from(["a" * 7, "a" * 8, "a" * 64, "a" * 65, "abcdefgh\n", "ａｂｃｄｅｆｇｈ", "abc defgh"]),
    hostile_text,
)
header_values = {
    HEADER_HOTKEY: st.one_of(hex_strings(64), st.just(CLIENT.hotkey)),
    HEADER_TIMESTAMP: timestamps,
    HEADER_NONCE: nonces,
    HEADER_SIGNATURE: hex_strings(128),
}
fuzzed_headers = st.fixed_dictionaries({}, optional=header_values)


class _Headers(dict):
    """Case-insensitive like Django's ``request.headers`` and httpx's headers."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        lowered = {key.lower(): value for key, value in self.items()}
        return lowered.get(name.lower(), default)


def _verify(
    headers: dict[str, str],
    method: str = "POST",
    path: str = "/api/v1/jobs",
    query: str = "",
    body: bytes = b"",
    **kw: object,
):
    try:
        return verify_request(_Headers(headers), method, path, query, body, now=NOW, **kw)  # type: ignore[arg-type]
    except RequestAuthError as exc:
        assert exc.code in CODES, exc.code
        assert exc.message
        return None


@FUZZ
@given(
    headers=fuzzed_headers,
    method=st.sampled_from(["GET", "POST", "get", "", "PØST"]),
    path=hostile_text,
    query=hostile_text,
    body=st.binary(max_size=64),
)
@example(
    headers={
        HEADER_HOTKEY: CLIENT.hotkey,
        HEADER_TIMESTAMP: f"{NOW}",
        HEADER_NONCE: "abcdefgh",
        HEADER_SIGNATURE: "00" * 64,
    },
    method="GET",
    path="/\ud800",
    query="",
    body=b"",
)
@example(
    headers={
        HEADER_HOTKEY: CLIENT.hotkey,
        HEADER_TIMESTAMP: "nan",
        HEADER_NONCE: "abcdefgh",
        HEADER_SIGNATURE: "00" * 64,
    },
    method="GET",
    path="/",
    query="",
    body=b"",
)
@example(
    headers={
        HEADER_HOTKEY: "ab" * 31,
        HEADER_TIMESTAMP: f"{NOW}",
        HEADER_NONCE: "abcdefgh",
        HEADER_SIGNATURE: "0" * 127,
    },
    method="GET",
    path="/",
    query="",
    body=b"",
)
def test_any_headers_are_refused_with_request_auth_error(
    headers: dict[str, str], method: str, path: str, query: str, body: bytes
) -> None:
    """Random, missing, stale, malformed or wrong-length headers: a RequestAuthError with a known code."""
    assert _verify(headers, method, path, query, body) is None


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.text(st.characters(codec="utf-8"), max_size=30).map(lambda p: "/" + p),
    query=st.text(st.characters(codec="utf-8"), max_size=30),
    body=st.binary(max_size=256),
    skew=st.floats(-59, 59),
    purpose=st.sampled_from(["request", REQUEST_PURPOSE]),
)
def test_a_signed_request_verifies_and_proves_its_sender(
    method: str, path: str, query: str, body: bytes, skew: float, purpose: str
) -> None:
    """Any request the SDK signs verifies within the clock window: the round trip of the headers."""
    headers = sign_request(CLIENT, method, path, query, body, now=NOW + skew, purpose=purpose)
    signed = verify_request(_Headers(headers), method, path, query, body, now=NOW, purpose=purpose)
    assert signed.hotkey == CLIENT.hotkey and signed.nonce == headers[HEADER_NONCE]


@FUZZ
@given(
    header=st.sampled_from(HEADERS),
    value=st.one_of(*header_values.values()),
    body=st.binary(max_size=64),
)
def test_changing_any_one_header_of_a_signed_request_is_refused(header: str, value: str, body: bytes) -> None:
    """One header replaced (by a value it did not have): a RequestAuthError, never a pass."""
    headers = sign_request(CLIENT, "POST", "/api/v1/jobs", "", body, now=NOW)
    if headers[header] == value:
        return
    # A timestamp that is the same number written differently still has to match what was signed.
    assert _verify({**headers, header: value}, body=body) is None


@FUZZ
@given(
    part=st.sampled_from(["method", "path", "query", "body", "purpose"]),
    value=st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
)
def test_a_signature_does_not_cover_another_request(part: str, value: str) -> None:
    """The same headers over another method, path, query, body or purpose: bad_signature."""
    request = {"method": "POST", "path": "/api/v1/jobs", "query": "a=1", "body": b"{}"}
    headers = sign_request(CLIENT, "POST", "/api/v1/jobs", "a=1", b"{}", now=NOW)
    changed = dict(request)
    if part in request:
        changed[part] = value.encode() if part == "body" else value
    purpose = value if part == "purpose" else "request"
    if (changed == request and purpose == "request") or "/" in purpose or "\n" in purpose:
        return
    if part == "method" and value.upper() == "POST":
        return  # the method is signed upper-cased
    try:
        verify_request(_Headers(headers), now=NOW, purpose=purpose, **changed)  # type: ignore[arg-type]
    except RequestAuthError as exc:
        assert exc.code == "bad_signature"
    else:
        raise AssertionError(f"a signature over another {part} passed")


@FUZZ
@given(claims=st.lists(nonces, max_size=30))
def test_the_nonce_store_refuses_each_nonce_a_second_time(claims: list[str]) -> None:
    """Nonces claimed in any order: each new one is remembered, each repeat is ``replayed``."""
    store, seen = NonceStore(capacity=1000), set()
    for nonce in claims:
        if nonce in seen:
            with pytest.raises(RequestAuthError) as caught:
                store.claim(nonce)
            assert caught.value.code == "replayed"
        else:
            store.claim(nonce)
            seen.add(nonce)
        assert store.seen(nonce)
    assert len(store) == len(seen)
