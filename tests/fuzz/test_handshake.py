"""Fuzzing the websocket handshake (protocol/handshake.py), both sides.

A server reads the client's first frame as ``auth.response`` and checks it with
:meth:`~protocol.handshake.ServerHandshake.verify`; a client reads ``auth.challenge`` and
``auth.ok``. Whatever arrives, the answer is the proven hotkey or a
:class:`~protocol.errors.HandshakeError` with close code 4401 or 4403, and a real client's
answer with any field changed is never accepted.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from protocol.errors import FrameError, HandshakeError
from protocol.handshake import CLOSE_FORBIDDEN, CLOSE_NOT_AUTHENTICATED, ClientHandshake, ServerHandshake
from protocol.messages import AUTH_FROM_CLIENT, AUTH_FROM_SERVER, AuthChallenge, AuthOk, AuthResponse, parse_frame

from .conftest import FUZZ
from .samples import FACILITATOR, MESSAGES, VALIDATOR
from .strategies import encoded_frames, hex_strings, hostile_text, json_values, mutated

pytestmark = pytest.mark.timeout(120)

ROLES = ["validator", "client", "executor", "miner"]


def server_verdict(server: ServerHandshake, frame: str | bytes) -> str | None:
    """What the server makes of ``frame`` as the first frame: the proven hotkey, or ``None`` once refused."""
    try:
        response = parse_frame(frame, AUTH_FROM_CLIENT)
    except FrameError:
        return None  # the consumer closes with 4401: expected auth.response
    try:
        hotkey = server.verify(response)
    except HandshakeError as exc:
        assert exc.close_code in (CLOSE_NOT_AUTHENTICATED, CLOSE_FORBIDDEN), exc.close_code
        assert exc.code and exc.message
        with pytest.raises(HandshakeError):
            server.accept()  # nothing to accept after a refusal
        return None
    assert isinstance(server.accept(), AuthOk)
    return hotkey


@FUZZ
@given(
    frame=encoded_frames(
        st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"type": st.just("auth.response")},
                optional={
                    "role": st.sampled_from(ROLES) | hostile_text,
                    "hotkey": hex_strings(64),
                    "client_nonce": hex_strings(64),
                    "signature": hex_strings(128),
                },
            ),
            st.sampled_from([json.loads(m.encode()) for m in MESSAGES]),
        )
    )
    | st.binary(max_size=40)
)
@example(
    frame='{{"type":"auth.response","role":"validator","hotkey":"{}","client_nonce":"{}","signature":"{}"}}'.format(
        "ab" * 32, "00" * 32, "00" * 64
    )
)
def test_any_first_frame_is_refused_with_4401_or_4403(frame: str | bytes) -> None:
    """Random frames, random ``auth.response`` fields and other messages: refused, never accepted."""
    assert server_verdict(ServerHandshake(FACILITATOR, "validator"), frame) is None


@FUZZ
@given(role=st.sampled_from(ROLES), data=st.data())
def test_a_real_response_with_any_field_changed_is_refused(role: str, data: st.DataObject) -> None:
    """The client's real answer, mutated: refused unless the change left it the same answer."""
    server = ServerHandshake(FACILITATOR, role)
    client = ClientHandshake(VALIDATOR, role, server_hotkey=FACILITATOR.hotkey)
    real = client.receive_challenge(server.challenge())
    document = data.draw(mutated(json.loads(real.encode()), ["role", "hotkey", "client_nonce", "signature", "type"]))
    frame = data.draw(encoded_frames(st.just(document)))
    hotkey = server_verdict(server, frame)
    if hotkey is not None:
        assert parse_frame(frame, AUTH_FROM_CLIENT) == real and hotkey == VALIDATOR.hotkey


@FUZZ
@given(response=st.one_of(json_values, st.sampled_from(MESSAGES), st.builds(object)))
def test_verify_of_anything_but_an_auth_response_is_a_4401(response: Any) -> None:
    """``verify`` handed any object (what a consumer parsed, or did not): ``auth_expected``."""
    if isinstance(response, AuthResponse):
        return
    with pytest.raises(HandshakeError) as caught:
        ServerHandshake(FACILITATOR, "validator").verify(response)
    assert (caught.value.close_code, caught.value.code) == (CLOSE_NOT_AUTHENTICATED, "auth_expected")


@FUZZ
@given(role=st.text(min_size=1, max_size=32), server_role=st.sampled_from(ROLES))
def test_a_full_handshake_round_trips_and_the_role_must_match(role: str, server_role: str) -> None:
    """Any role a client claims is carried through JSON intact; only the endpoint's own role is let in."""
    server = ServerHandshake(FACILITATOR, server_role)
    client = ClientHandshake(VALIDATOR, role, server_hotkey=FACILITATOR.hotkey)
    challenge = parse_frame(server.challenge().encode(), AUTH_FROM_SERVER)
    response = client.receive_challenge(challenge).encode()
    hotkey = server_verdict(server, response)
    if role == server_role:
        assert hotkey == VALIDATOR.hotkey
        client.receive_ok(parse_frame(server.accept().encode(), AUTH_FROM_SERVER))
    else:
        assert hotkey is None


@FUZZ
@given(
    frames=st.lists(
        encoded_frames(
            st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["auth.challenge", "auth.ok", "error"])},
                    optional={
                        "server_hotkey": hex_strings(64),
                        "nonce": hex_strings(64),
                        "signature": hex_strings(128),
                        "code": hostile_text,
                        "message": hostile_text,
                    },
                ),
            )
        ),
        min_size=1,
        max_size=2,
    ),
    pinned=st.booleans(),
)
def test_a_client_refuses_any_challenge_or_ok_it_cannot_check(frames: list[str | bytes], pinned: bool) -> None:
    """What a dialing party reads from a server it does not trust yet: a HandshakeError, or a
    challenge it answers and an ``auth.ok`` it then refuses (no one signed it)."""
    client = ClientHandshake(VALIDATOR, "validator", server_hotkey=FACILITATOR.hotkey if pinned else None)
    messages = []
    for frame in frames:
        try:
            messages.append(parse_frame(frame, AUTH_FROM_SERVER))
        except FrameError:
            return
    try:
        if isinstance(messages[0], AuthChallenge):
            client.receive_challenge(messages[0])
            messages = messages[1:]
        for message in messages:
            client.receive_ok(message)
    except HandshakeError as exc:
        assert exc.close_code in (CLOSE_NOT_AUTHENTICATED, CLOSE_FORBIDDEN)
        return
    assert not messages, "an auth.ok nobody signed was accepted"
