"""Handshake messages: ``auth.challenge`` / ``auth.response`` / ``auth.ok`` (DESIGN.md §3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from protocol.messages.base import Message

__all__ = ["AuthChallenge", "AuthOk", "AuthResponse"]

_HEX32 = r"^[0-9a-f]{64}$"
_HEX64 = r"^[0-9a-f]{128}$"


class AuthChallenge(Message):
    type: Literal["auth.challenge"] = "auth.challenge"
    server_hotkey: str = Field(pattern=_HEX32)
    nonce: str = Field(pattern=_HEX32)


class AuthResponse(Message):
    type: Literal["auth.response"] = "auth.response"
    role: str = Field(max_length=32)
    hotkey: str = Field(pattern=_HEX32)
    client_nonce: str = Field(pattern=_HEX32)
    signature: str = Field(pattern=_HEX64)


class AuthOk(Message):
    """The server's proof of its own identity: it signs the same transcript."""

    type: Literal["auth.ok"] = "auth.ok"
    signature: str = Field(pattern=_HEX64)
