"""Keypairs, key files and domain-separated signatures (protocol/keys.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from protocol.canonical import canonical_json
from protocol.errors import SignatureError
from protocol.keys import Keypair, domain_message, verify_payload, verify_raw

PAYLOAD = {"job_id": "j-1", "n": 3, "nested": {"b": [1, 2], "a": "é"}}


def flip_byte(hex_value: str, index: int) -> str:
    raw = bytearray(bytes.fromhex(hex_value))
    raw[index] ^= 0x01
    return raw.hex()


def test_hotkey_is_the_public_key_as_64_lowercase_hex_characters() -> None:
    """A hotkey is the 32-byte ed25519 public key written as lowercase hex."""
    keypair = Keypair.generate()
    assert len(keypair.hotkey) == 64
    assert bytes.fromhex(keypair.hotkey).hex() == keypair.hotkey


def test_repr_shows_a_short_hotkey_prefix_and_never_the_seed() -> None:
    """The repr names the key by a hotkey prefix and leaks nothing of the seed."""
    keypair = Keypair.generate()
    assert repr(keypair) == f"<Keypair {keypair.hotkey[:12]}…>"
    assert keypair.seed_hex not in repr(keypair)


def test_seed_hex_round_trips_to_the_same_identity() -> None:
    """A keypair rebuilt from its seed has the same hotkey and makes the same signatures."""
    keypair = Keypair.generate()
    again = Keypair.from_seed_hex(keypair.seed_hex + "\n")
    assert again.hotkey == keypair.hotkey
    assert again.sign("test", PAYLOAD) == keypair.sign("test", PAYLOAD)


@pytest.mark.parametrize("seed", ["", "zz" * 32, "00" * 31, "00" * 33, "0" * 63])
def test_bad_seed_is_refused_with_bad_key(seed: str) -> None:
    """A seed that is not exactly 32 bytes of hex raises SignatureError with code bad_key."""
    with pytest.raises(SignatureError) as info:
        Keypair.from_seed_hex(seed)
    assert info.value.code == "bad_key"
    assert info.value.message == "a key seed must be 32 bytes of hex"


def test_save_writes_the_seed_with_mode_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    """The key file is created owner-only whatever the process umask is."""
    keypair = Keypair.generate()
    path = tmp_path / "keys" / "client.key"
    previous = os.umask(0)
    try:
        keypair.save(path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == keypair.seed_hex + "\n"


def test_saved_key_loads_back_to_the_same_identity(tmp_path: Path) -> None:
    """Keypair.load reads what Keypair.save wrote."""
    keypair = Keypair.generate()
    keypair.save(tmp_path / "a.key")
    assert Keypair.load(tmp_path / "a.key").hotkey == keypair.hotkey


def test_save_refuses_to_overwrite_an_existing_key_and_leaves_it_intact(tmp_path: Path) -> None:
    """Saving over an existing key file raises FileExistsError; the old key and directory stay as they were."""
    path = tmp_path / "a.key"
    first = Keypair.generate()
    first.save(path)
    with pytest.raises(FileExistsError):
        Keypair.generate().save(path)
    assert Keypair.load(path).hotkey == first.hotkey
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.key"]


def test_load_or_create_creates_once_then_loads_the_same_key(tmp_path: Path) -> None:
    """The first call creates the key file; later calls return the same identity."""
    path = tmp_path / "server.key"
    created = Keypair.load_or_create(path)
    assert path.exists()
    assert Keypair.load_or_create(path).hotkey == created.hotkey


def test_load_of_a_corrupt_key_file_is_refused_with_bad_key(tmp_path: Path) -> None:
    """A key file that does not hold a hex seed raises SignatureError bad_key."""
    path = tmp_path / "bad.key"
    path.write_text("not a key\n")
    with pytest.raises(SignatureError) as info:
        Keypair.load(path)
    assert info.value.code == "bad_key"


def test_domain_message_is_the_tag_line_followed_by_canonical_json() -> None:
    """The signed bytes are b"gridmarket/<purpose>/v1\\n" + canonical JSON of the payload."""
    assert domain_message("job-spec", PAYLOAD) == b"gridmarket/job-spec/v1\n" + canonical_json(PAYLOAD)


@pytest.mark.parametrize("purpose", ["", "a/b", "a\nb"])
def test_domain_message_refuses_a_purpose_that_could_forge_the_tag(purpose: str) -> None:
    """Empty purposes and purposes with '/' or a newline are refused, so no tag can imitate another."""
    with pytest.raises(ValueError, match="invalid signature purpose"):
        domain_message(purpose, PAYLOAD)


def test_signature_verifies_for_its_purpose_and_payload() -> None:
    """verify_payload accepts a signature made for the same purpose and payload."""
    keypair = Keypair.generate()
    verify_payload(keypair.hotkey, "test", PAYLOAD, keypair.sign("test", PAYLOAD))


def test_signature_is_independent_of_key_order() -> None:
    """Dicts equal up to key order sign the same canonical bytes."""
    keypair = Keypair.generate()
    reordered = {"nested": {"a": "é", "b": [1, 2]}, "n": 3, "job_id": "j-1"}
    verify_payload(keypair.hotkey, "test", reordered, keypair.sign("test", PAYLOAD))


@pytest.mark.parametrize(
    ("signed_for", "verified_for"),
    [("job-spec", "request"), ("ws-auth-client", "ws-auth-server"), ("request", "job-spec"), ("a", "b")],
)
def test_signature_made_for_one_purpose_does_not_verify_for_another(signed_for: str, verified_for: str) -> None:
    """Domain separation: the same payload signed under one tag is refused under any other."""
    keypair = Keypair.generate()
    signature = keypair.sign(signed_for, PAYLOAD)
    with pytest.raises(SignatureError) as info:
        verify_payload(keypair.hotkey, verified_for, PAYLOAD, signature)
    assert info.value.code == "bad_signature"
    assert info.value.message == "signature does not verify"


def test_raw_signature_over_the_bare_canonical_json_does_not_verify_as_a_domain_signature() -> None:
    """A signature over the payload without the domain tag is refused."""
    keypair = Keypair.generate()
    signature = keypair.sign_raw(canonical_json(PAYLOAD))
    with pytest.raises(SignatureError):
        verify_payload(keypair.hotkey, "test", PAYLOAD, signature)


def test_signature_with_any_byte_flipped_is_refused() -> None:
    """Flipping any one byte of a signature makes it fail with bad_signature."""
    keypair = Keypair.generate()
    message = b"some bytes"
    signature = keypair.sign_raw(message)
    verify_raw(keypair.hotkey, message, signature)
    for index in range(64):
        with pytest.raises(SignatureError) as info:
            verify_raw(keypair.hotkey, message, flip_byte(signature, index))
        assert info.value.code == "bad_signature", index


def test_signature_under_a_hotkey_with_any_byte_flipped_is_refused() -> None:
    """A signature does not verify under any other hotkey, one byte away from the signer's."""
    keypair = Keypair.generate()
    signature = keypair.sign_raw(b"m")
    for index in range(32):
        with pytest.raises(SignatureError) as info:
            verify_raw(flip_byte(keypair.hotkey, index), b"m", signature)
        assert info.value.code == "bad_signature", index


def test_signature_by_another_key_is_refused() -> None:
    """A valid signature by someone else does not verify for this hotkey."""
    signer, other = Keypair.generate(), Keypair.generate()
    with pytest.raises(SignatureError) as info:
        verify_payload(other.hotkey, "test", PAYLOAD, signer.sign("test", PAYLOAD))
    assert info.value.code == "bad_signature"


@pytest.mark.parametrize(
    ("hotkey", "message"),
    [("zz" * 32, "hotkey is not hex"), ("ab" * 31, "hotkey must be 32 bytes"), ("", "hotkey must be 32 bytes")],
)
def test_malformed_hotkey_is_refused_with_bad_hotkey(hotkey: str, message: str) -> None:
    """A hotkey that is not 32 bytes of hex raises SignatureError bad_hotkey."""
    with pytest.raises(SignatureError) as info:
        verify_raw(hotkey, b"m", "00" * 64)
    assert info.value.code == "bad_hotkey"
    assert info.value.message == message


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ("xy" * 64, "signature is not hex"),
        ("00" * 63, "signature must be 64 bytes"),
        ("", "signature must be 64 bytes"),
    ],
)
def test_malformed_signature_is_refused_with_bad_signature(signature: str, message: str) -> None:
    """A signature that is not 64 bytes of hex raises SignatureError bad_signature."""
    keypair = Keypair.generate()
    with pytest.raises(SignatureError) as info:
        verify_raw(keypair.hotkey, b"m", signature)
    assert info.value.code == "bad_signature"
    assert info.value.message == message
