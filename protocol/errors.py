"""Errors shared by every party.

ProtocolError                 base; carries a reason ``code``
├── FrameError                a frame that is not JSON or not a known, valid message
├── SignatureError            a signature that does not verify, or a malformed key
│   ├── EndpointTrustError    a streaming job's endpoint its miner did not vouch for (protocol.stream_caller)
│   └── ReplySealError        a streaming job's reply not sealed as received (``code``, ``status``)
├── ReplyBrokenError          a streaming job broke off its reply; the seal says so (``error``, ``evidence``)
├── HandshakeError            a websocket handshake refused (``close_code`` 4401 / 4403)
├── ConnectionLost            an open websocket closed (``close_code``, ``reason`` of the close frame)
├── SpecError                 a job spec that does not validate (``errors``: one per field)
└── RequestAuthError          a signed REST request refused (stale, bad signature …)
    ├── ReplayedRequest       ``replayed``: its nonce was seen within the window
    └── NonceStoreFull        ``busy``: more requests in the window than the store holds (429)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protocol.streaming import Evidence

__all__ = [
    "ConnectionLost",
    "EndpointTrustError",
    "FrameError",
    "HandshakeError",
    "NonceStoreFull",
    "ProtocolError",
    "ReplayedRequest",
    "ReplyBrokenError",
    "ReplySealError",
    "RequestAuthError",
    "SignatureError",
    "SpecError",
]


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


class EndpointTrustError(SignatureError):
    """A streaming job's endpoint its miner did not vouch for: nothing is sent to it."""

    code = "untrusted_endpoint"


class ReplySealError(SignatureError):
    """A streaming job's reply its key did not seal as received.

    ``code``: ``unsigned``, ``bad_signature``, ``digest_mismatch``, ``request_mismatch``,
    ``status_mismatch``, ``no_seal``, ``bad_framing`` or ``bad_message``; ``status`` the reply's.
    """

    def __init__(self, message: str, code: str, status: int | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class ReplyBrokenError(ProtocolError):
    """A streaming job broke off its reply; its seal (``complete=False``) verified and is in ``evidence``."""

    code = "reply_broken"

    def __init__(self, error: str | None, evidence: Evidence) -> None:
        super().__init__(f"the job broke off its reply: {error or 'no reason given'}")
        self.error, self.evidence = error, evidence


class HandshakeError(ProtocolError):
    """``close_code`` is 4401 (not authenticated), 4403 (authenticated but not allowed) or 1009 (a
    frame over the handshake's size limit)."""

    code = "handshake_failed"

    def __init__(self, message: str, *, close_code: int = 4401, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.close_code = close_code


class ConnectionLost(ProtocolError):
    """The socket closed; ``close_code`` and ``reason`` are the close frame's (``None``, ``""`` without one)."""

    code = "connection_lost"

    def __init__(self, close_code: int | None, reason: str) -> None:
        super().__init__(f"connection closed ({close_code}): {reason}")
        self.close_code, self.reason = close_code, reason


class SpecError(ProtocolError):
    """A spec that does not validate; ``errors`` lists each field's problem."""

    code = "invalid_spec"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class RequestAuthError(ProtocolError):
    code = "unauthenticated"


class ReplayedRequest(RequestAuthError):
    """A nonce seen within the freshness window: whoever keeps the nonces raises this one."""

    code = "replayed"

    def __init__(self, message: str = "this nonce was already used") -> None:
        super().__init__(message)


class NonceStoreFull(RequestAuthError):
    """More requests in the replay window than the store holds (a server answers 429)."""

    code = "busy"
