"""The challenge–response websocket handshake, sans-I/O (protocol/handshake.py)."""

from __future__ import annotations

import pytest

from protocol.errors import HandshakeError
from protocol.handshake import (
    CLIENT_PURPOSE,
    CLOSE_FORBIDDEN,
    CLOSE_NOT_AUTHENTICATED,
    SERVER_PURPOSE,
    ClientHandshake,
    ServerHandshake,
)
from protocol.keys import Keypair
from protocol.messages import AUTH_FROM_CLIENT, AUTH_FROM_SERVER, AuthChallenge, AuthOk, AuthResponse, Heartbeat
from protocol.messages.base import parse_frame

SERVER = Keypair.generate()
CLIENT = Keypair.generate()


def flip_byte(hex_value: str, index: int) -> str:
    raw = bytearray(bytes.fromhex(hex_value))
    raw[index] ^= 0x01
    return raw.hex()


def flip_char(text: str, index: int) -> str:
    return text[:index] + chr(ord(text[index]) ^ 0x01) + text[index + 1 :]


def refused_by_server(server: ServerHandshake, response: object) -> HandshakeError:
    with pytest.raises(HandshakeError) as info:
        server.verify(response)
    assert server.client_hotkey is None
    return info.value


def refused_by_client(client: ClientHandshake, ok: object) -> HandshakeError:
    with pytest.raises(HandshakeError) as info:
        client.receive_ok(ok)
    return info.value


def half_done(role: str = "validator") -> tuple[ServerHandshake, ClientHandshake, AuthResponse]:
    server = ServerHandshake(SERVER, role)
    client = ClientHandshake(CLIENT, role, server_hotkey=SERVER.hotkey)
    return server, client, client.receive_challenge(server.challenge())


def test_handshake_happy_path_authenticates_both_sides() -> None:
    """The server learns the client's hotkey; the client checks the server's proof of its pinned hotkey."""
    server, client, response = half_done()
    assert server.verify(response) == CLIENT.hotkey
    assert server.client_hotkey == CLIENT.hotkey
    client.receive_ok(server.accept())
    assert client.server_hotkey == SERVER.hotkey


def test_handshake_happy_path_through_encoded_frames() -> None:
    """Every handshake message survives encoding and parsing with the auth unions."""
    server = ServerHandshake(SERVER, "executor")
    client = ClientHandshake(CLIENT, "executor")
    challenge = parse_frame(server.challenge().encode(), AUTH_FROM_SERVER)
    response = parse_frame(client.receive_challenge(challenge).encode(), AUTH_FROM_CLIENT)
    assert server.verify(response) == CLIENT.hotkey
    client.receive_ok(parse_frame(server.accept().encode(), AUTH_FROM_SERVER))


def test_unpinned_client_learns_the_server_hotkey_from_the_challenge() -> None:
    """A client without a pinned hotkey (first contact) adopts the one the server proves."""
    server = ServerHandshake(SERVER, "validator")
    client = ClientHandshake(CLIENT, "validator")
    server.verify(client.receive_challenge(server.challenge()))
    client.receive_ok(server.accept())
    assert client.server_hotkey == SERVER.hotkey


def test_every_connection_gets_a_fresh_nonce() -> None:
    """Server nonces and client nonces are 32 random bytes, different on each connection."""
    first, second = ServerHandshake(SERVER, "x"), ServerHandshake(SERVER, "x")
    assert first.nonce != second.nonce and len(first.nonce) == 64
    assert ClientHandshake(CLIENT, "x").client_nonce != ClientHandshake(CLIENT, "x").client_nonce


def test_wrong_role_is_forbidden_with_4403() -> None:
    """A client claiming another role than the endpoint's is refused with close code 4403, wrong_role."""
    server = ServerHandshake(SERVER, "miner")
    client = ClientHandshake(CLIENT, "validator")
    error = refused_by_server(server, client.receive_challenge(server.challenge()))
    assert (error.close_code, error.code) == (CLOSE_FORBIDDEN, "wrong_role")
    assert error.message == "this endpoint is for role 'miner'"


def test_bad_signature_is_refused_with_4401() -> None:
    """An auth.response whose signature does not verify is refused with 4401, bad_signature."""
    server, _, response = half_done()
    forged = response.model_copy(update={"signature": Keypair.generate().sign(CLIENT_PURPOSE, {"x": 1})})
    error = refused_by_server(server, forged)
    assert (error.close_code, error.code) == (CLOSE_NOT_AUTHENTICATED, "bad_signature")
    assert error.message == "handshake signature refused: signature does not verify"


def test_response_signature_with_any_byte_flipped_is_refused() -> None:
    """Flipping any byte of the auth.response signature is refused with 4401."""
    server, _, response = half_done()
    for index in range(64):
        tampered = AuthResponse(**{**response.model_dump(), "signature": flip_byte(response.signature, index)})
        error = refused_by_server(server, tampered)
        assert (error.close_code, error.code) == (CLOSE_NOT_AUTHENTICATED, "bad_signature"), index


@pytest.mark.parametrize("field", ["hotkey", "client_nonce"])
def test_response_with_any_byte_of_a_signed_field_flipped_is_refused(field: str) -> None:
    """The claimed hotkey and the client nonce are covered byte by byte; changing one is refused with 4401."""
    server, _, response = half_done()
    original = getattr(response, field)
    for index in range(len(original) // 2):
        tampered = AuthResponse(**{**response.model_dump(), field: flip_byte(original, index)})
        error = refused_by_server(server, tampered)
        assert (error.close_code, error.code) == (CLOSE_NOT_AUTHENTICATED, "bad_signature"), (field, index)


def test_response_with_any_character_of_the_role_flipped_is_forbidden() -> None:
    """A changed role never passes: it is not the endpoint's role, so the server answers 4403."""
    server, _, response = half_done()
    for index in range(len(response.role)):
        tampered = AuthResponse(**{**response.model_dump(), "role": flip_char(response.role, index)})
        error = refused_by_server(server, tampered)
        assert (error.close_code, error.code) == (CLOSE_FORBIDDEN, "wrong_role"), index


def test_response_signed_for_a_role_but_relabelled_is_refused() -> None:
    """A response signed as role A and relabelled as the endpoint's role B fails the signature."""
    server = ServerHandshake(SERVER, "validator")
    client = ClientHandshake(CLIENT, "miner")
    response = client.receive_challenge(server.challenge())
    relabelled = AuthResponse(**{**response.model_dump(), "role": "validator"})
    error = refused_by_server(server, relabelled)
    assert (error.close_code, error.code) == (CLOSE_NOT_AUTHENTICATED, "bad_signature")


def test_replayed_response_against_a_new_challenge_is_refused() -> None:
    """An auth.response recorded on one connection is refused on the next: the server nonce changed."""
    _, _, recorded = half_done()
    fresh_server = ServerHandshake(SERVER, "validator")
    fresh_server.challenge()
    error = refused_by_server(fresh_server, recorded)
    assert (error.close_code, error.code) == (CLOSE_NOT_AUTHENTICATED, "bad_signature")


def test_response_made_for_another_server_is_refused() -> None:
    """A response signed for server A (same nonce relayed by a man in the middle) is refused by server B."""
    server_b = ServerHandshake(SERVER, "validator")
    relayed = AuthChallenge(server_hotkey=Keypair.generate().hotkey, nonce=server_b.nonce)
    response = ClientHandshake(CLIENT, "validator").receive_challenge(relayed)
    error = refused_by_server(server_b, response)
    assert (error.close_code, error.code) == (CLOSE_NOT_AUTHENTICATED, "bad_signature")


def test_server_expects_an_auth_response_first() -> None:
    """Any other first message is refused with 4401, auth_expected."""
    server = ServerHandshake(SERVER, "validator")
    error = refused_by_server(server, Heartbeat())
    assert (error.close_code, error.code) == (CLOSE_NOT_AUTHENTICATED, "auth_expected")


def test_server_cannot_accept_before_verifying() -> None:
    """accept() before a verified response raises auth_expected rather than signing anything."""
    with pytest.raises(HandshakeError) as info:
        ServerHandshake(SERVER, "validator").accept()
    assert info.value.code == "auth_expected"


def test_server_cannot_accept_after_a_refused_response() -> None:
    """A refused response leaves nothing to accept."""
    server, _, response = half_done()
    refused_by_server(server, response.model_copy(update={"signature": "00" * 64}))
    with pytest.raises(HandshakeError) as info:
        server.accept()
    assert info.value.code == "auth_expected"


def test_forbid_builds_a_4403_naming_the_hotkey_and_role() -> None:
    """After verifying, a hotkey the registry refuses is closed with 4403, forbidden."""
    server, _, response = half_done()
    server.verify(response)
    error = server.forbid("blacklisted")
    assert (error.close_code, error.code) == (CLOSE_FORBIDDEN, "forbidden")
    assert error.message == f"hotkey {CLIENT.hotkey} is not allowed as validator: blacklisted"


def test_client_pinning_another_server_hotkey_is_refused_with_4403() -> None:
    """A client that expects a different server refuses the challenge before signing anything."""
    server = ServerHandshake(SERVER, "validator")
    pinned = Keypair.generate().hotkey
    client = ClientHandshake(CLIENT, "validator", server_hotkey=pinned)
    with pytest.raises(HandshakeError) as info:
        client.receive_challenge(server.challenge())
    assert (info.value.close_code, info.value.code) == (CLOSE_FORBIDDEN, "wrong_server")
    assert info.value.message == f"server identifies as {SERVER.hotkey}, expected {pinned}"


def test_client_expects_an_auth_challenge_first() -> None:
    """Anything but a challenge first is refused with auth_expected."""
    with pytest.raises(HandshakeError) as info:
        ClientHandshake(CLIENT, "validator").receive_challenge(Heartbeat())
    assert info.value.code == "auth_expected"


def test_client_refuses_auth_ok_before_a_challenge() -> None:
    """An auth.ok arriving before any challenge is refused with auth_expected."""
    error = refused_by_client(ClientHandshake(CLIENT, "validator"), AuthOk(signature="00" * 64))
    assert error.code == "auth_expected"


def test_client_refuses_something_else_than_auth_ok() -> None:
    """After the challenge, the client accepts only an auth.ok."""
    server, client, _ = half_done()
    assert refused_by_client(client, server.challenge()).code == "auth_expected"


def test_auth_ok_forged_by_another_key_is_refused() -> None:
    """An auth.ok signed by an impostor over the right transcript does not prove the server's hotkey."""
    server, client, response = half_done()
    server.verify(response)
    transcript = {
        "role": "validator",
        "client_hotkey": CLIENT.hotkey,
        "server_hotkey": SERVER.hotkey,
        "nonce": server.nonce,
        "client_nonce": client.client_nonce,
    }
    assert SERVER.sign(SERVER_PURPOSE, transcript) == server.accept().signature  # the transcript is rebuilt exactly
    forged = AuthOk(signature=Keypair.generate().sign(SERVER_PURPOSE, transcript))
    error = refused_by_client(client, forged)
    assert (error.close_code, error.code) == (CLOSE_NOT_AUTHENTICATED, "bad_server_signature")
    assert error.message == "server failed to prove its hotkey"


def test_auth_ok_with_any_byte_flipped_is_refused() -> None:
    """Flipping any byte of the server's auth.ok signature is refused with bad_server_signature."""
    server, client, response = half_done()
    server.verify(response)
    ok = server.accept()
    for index in range(64):
        error = refused_by_client(client, AuthOk(signature=flip_byte(ok.signature, index)))
        assert error.code == "bad_server_signature", index
    client.receive_ok(ok)


def test_auth_ok_from_an_earlier_connection_is_refused() -> None:
    """A recorded auth.ok does not prove the server on a new connection (fresh client nonce)."""
    server, _, response = half_done()
    server.verify(response)
    recorded = server.accept()
    next_server, next_client, next_response = half_done()
    next_server.verify(next_response)
    assert refused_by_client(next_client, recorded).code == "bad_server_signature"


def test_client_signature_echoed_back_as_auth_ok_is_refused_even_with_a_shared_key() -> None:
    """Domain separation: the client's own transcript signature is no server proof, even if both use one key."""
    shared = Keypair.generate()
    server = ServerHandshake(shared, "validator")
    client = ClientHandshake(shared, "validator")
    response = client.receive_challenge(server.challenge())
    server.verify(response)
    error = refused_by_client(client, AuthOk(signature=response.signature))
    assert error.code == "bad_server_signature"
    client.receive_ok(server.accept())


def test_server_proof_echoed_as_a_client_response_is_refused() -> None:
    """Domain separation the other way: a server's auth.ok signature cannot authenticate a client."""
    shared = Keypair.generate()
    server = ServerHandshake(shared, "validator")
    client = ClientHandshake(shared, "validator")
    response = client.receive_challenge(server.challenge())
    server.verify(response)
    ok = server.accept()
    second = ServerHandshake(shared, "validator")
    second.nonce = server.nonce  # even with the same nonce, the server purpose is not the client purpose
    echoed = AuthResponse(**{**response.model_dump(), "signature": ok.signature})
    assert refused_by_server(second, echoed).code == "bad_signature"
