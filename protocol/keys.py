"""Ed25519 identities and domain-separated signatures (DESIGN.md §3).

A party's *hotkey* is its public key as hex. Every signature covers
``b"gridmarket/<purpose>/v1\\n" + canonical_json(payload)`` so that a signature made for one purpose
can never be replayed for another.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from protocol.canonical import canonical_json
from protocol.errors import SignatureError

__all__ = ["Keypair", "domain_message", "verify_payload", "verify_raw"]


def domain_message(purpose: str, payload: Any) -> bytes:
    """The exact bytes signed for ``purpose`` (e.g. ``"job-spec"``)."""
    if not purpose or "/" in purpose or "\n" in purpose:
        raise ValueError(f"invalid signature purpose {purpose!r}")
    return b"gridmarket/" + purpose.encode() + b"/v1\n" + canonical_json(payload)


class Keypair:
    """An ed25519 signing key with its hotkey."""

    def __init__(self, signing_key: SigningKey) -> None:
        self._signing_key = signing_key
        self.hotkey: str = signing_key.verify_key.encode().hex()

    def __repr__(self) -> str:
        return f"<Keypair {self.hotkey[:12]}…>"

    @classmethod
    def generate(cls) -> Keypair:
        return cls(SigningKey.generate())

    @classmethod
    def from_seed_hex(cls, seed_hex: str) -> Keypair:
        try:
            seed = bytes.fromhex(seed_hex.strip())
            return cls(SigningKey(seed))
        except (ValueError, TypeError) as exc:
            raise SignatureError("a key seed must be 32 bytes of hex", code="bad_key") from exc

    @property
    def seed_hex(self) -> str:
        return self._signing_key.encode().hex()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keypair:
        """Read a key file written by :meth:`save` (``grid keys new``)."""
        return cls.from_seed_hex(Path(path).read_text())

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> Keypair:
        path = Path(path)
        if path.exists():
            return cls.load(path)
        keypair = cls.generate()
        keypair.save(path)
        return keypair

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the seed with mode 0600, atomically, refusing to overwrite an existing key."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.seed_hex + "\n")
        if path.exists():
            tmp.unlink()
            raise FileExistsError(f"key file {path} already exists")
        os.replace(tmp, path)

    def sign_raw(self, message: bytes) -> str:
        return self._signing_key.sign(message).signature.hex()

    def sign(self, purpose: str, payload: Any) -> str:
        """Sign ``payload`` for ``purpose``; returns the signature as hex."""
        return self.sign_raw(domain_message(purpose, payload))


@functools.lru_cache(maxsize=4096)  # a validator checks the same miners' and validators' keys over and over
def _verify_key(hotkey: str) -> VerifyKey:
    try:
        raw = bytes.fromhex(hotkey)
    except (ValueError, TypeError) as exc:
        raise SignatureError("hotkey is not hex", code="bad_hotkey") from exc
    if len(raw) != 32:
        raise SignatureError("hotkey must be 32 bytes", code="bad_hotkey")
    return VerifyKey(raw)


def verify_raw(hotkey: str, message: bytes, signature_hex: str) -> None:
    """Raise :class:`SignatureError` unless ``signature_hex`` is ``hotkey``'s signature of ``message``."""
    key = _verify_key(hotkey)
    try:
        signature = bytes.fromhex(signature_hex)
    except (ValueError, TypeError) as exc:
        raise SignatureError("signature is not hex") from exc
    if len(signature) != 64:
        raise SignatureError("signature must be 64 bytes")
    try:
        key.verify(message, signature)
    except BadSignatureError as exc:
        raise SignatureError("signature does not verify") from exc


def verify_payload(hotkey: str, purpose: str, payload: Any, signature_hex: str) -> None:
    """Raise :class:`SignatureError` unless the signature covers ``payload`` for ``purpose``."""
    try:
        message = domain_message(purpose, payload)
    except ValueError as exc:  # NaN, a lone surrogate, too deep: nobody can have signed that
        raise SignatureError(f"the signed payload has no canonical form: {exc}", code="bad_payload") from None
    verify_raw(hotkey, message, signature_hex)
