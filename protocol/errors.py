"""Errors shared by every party.

ProtocolError                 base; carries a reason ``code``
├── FrameError                a frame that is not JSON or not a known, valid message
├── SignatureError            a signature that does not verify, or a malformed key
├── HandshakeError            a websocket handshake refused (``close_code`` 4401 / 4403)
└── RequestAuthError          a signed REST request refused (stale, replayed, bad signature)
"""

from __future__ import annotations

__all__ = ["FrameError", "HandshakeError", "ProtocolError", "RequestAuthError", "SignatureError"]


class ProtocolError(Exception):
    """Base class; ``code`` is a short machine-readable reason."""

    code = "protocol_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class FrameError(ProtocolError):
    code = "bad_frame"


class SignatureError(ProtocolError):
    code = "bad_signature"


class HandshakeError(ProtocolError):
    """``close_code`` is 4401 (not authenticated) or 4403 (authenticated but not allowed)."""

    code = "handshake_failed"

    def __init__(self, message: str, *, close_code: int = 4401, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.close_code = close_code


class RequestAuthError(ProtocolError):
    code = "unauthenticated"
