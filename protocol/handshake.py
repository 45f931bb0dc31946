"""The challenge–response websocket handshake, sans-I/O (DESIGN.md §3).

Server                                   Client
  ── auth.challenge{server_hotkey, nonce} ──▶
  ◀── auth.response{role, hotkey, client_nonce, signature} ──
  ── auth.ok{signature} ──▶                (or close 4401 / 4403 with a reason)

Both signatures cover the same transcript (role, both hotkeys, both nonces) under different
purposes, so each side proves its key to the other and nothing can be replayed: the nonces are
fresh on every connection. These classes only build and check messages; consumers, the executor
and the transport helper move them over their own sockets.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from protocol.errors import HandshakeError, SignatureError
from protocol.keys import Keypair, verify_payload
from protocol.messages.auth import AuthChallenge, AuthOk, AuthResponse

__all__ = [
    "CLOSE_FORBIDDEN",
    "CLOSE_NOT_AUTHENTICATED",
    "CLOSE_TOO_BIG",
    "MAX_HANDSHAKE_FRAME_BYTES",
    "ClientHandshake",
    "ServerHandshake",
]

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_BIG = 1009  # RFC 6455's "message too big", as websockets closes an oversized frame
# A frame sent before the handshake completes is an auth.response: a few hundred bytes. Servers
# read no more than this from a peer that has not proved its key (node/ws_limits.py, node/consumers.py).
MAX_HANDSHAKE_FRAME_BYTES = 64 * 1024
CLIENT_PURPOSE = "ws-auth-client"
SERVER_PURPOSE = "ws-auth-server"


def _transcript(role: str, client_hotkey: str, server_hotkey: str, nonce: str, client_nonce: str) -> dict[str, str]:
    return {
        "role": role,
        "client_hotkey": client_hotkey,
        "server_hotkey": server_hotkey,
        "nonce": nonce,
        "client_nonce": client_nonce,
    }


@dataclass
class ServerHandshake:
    """One connection's server side: :meth:`challenge`, then :meth:`verify`, then :meth:`accept`.

    Between ``verify`` and ``accept`` the server checks that the proven hotkey is allowed for
    the role (registry, blacklist) and, if not, closes with :data:`CLOSE_FORBIDDEN`.

    Args:
        keypair: the server's identity.
        role: the role a client must claim on this endpoint (``"validator"``, ``"executor"`` …).
    """

    keypair: Keypair
    role: str

    def __post_init__(self) -> None:
        self.nonce = secrets.token_hex(32)
        self.client_hotkey: str | None = None
        self._transcript: dict[str, str] | None = None

    def challenge(self) -> AuthChallenge:
        return AuthChallenge(server_hotkey=self.keypair.hotkey, nonce=self.nonce)

    def verify(self, response: object) -> str:
        """Check the client's answer; return the hotkey it proved.

        Raises:
            HandshakeError: 4401 for a bad answer, 4403 for the wrong role.
        """
        if not isinstance(response, AuthResponse):
            raise HandshakeError("expected auth.response first", code="auth_expected")
        if response.role != self.role:
            raise HandshakeError(
                f"this endpoint is for role {self.role!r}", close_code=CLOSE_FORBIDDEN, code="wrong_role"
            )
        transcript = _transcript(self.role, response.hotkey, self.keypair.hotkey, self.nonce, response.client_nonce)
        try:
            verify_payload(response.hotkey, CLIENT_PURPOSE, transcript, response.signature)
        except SignatureError as exc:
            raise HandshakeError(f"handshake signature refused: {exc.message}", code="bad_signature") from exc
        self.client_hotkey, self._transcript = response.hotkey, transcript
        return response.hotkey

    def forbid(self, why: str = "") -> HandshakeError:
        """The error to close with when the verified hotkey is not allowed."""
        detail = f": {why}" if why else ""
        return HandshakeError(
            f"hotkey {self.client_hotkey} is not allowed as {self.role}{detail}",
            close_code=CLOSE_FORBIDDEN,
            code="forbidden",
        )

    def accept(self) -> AuthOk:
        """The ``auth.ok`` proving the server's own hotkey over the same transcript."""
        if self._transcript is None:
            raise HandshakeError("accept() before a verified auth.response", code="auth_expected")
        return AuthOk(signature=self.keypair.sign(SERVER_PURPOSE, self._transcript))


@dataclass
class ClientHandshake:
    """One connection's client side.

    Args:
        keypair: the client's identity.
        role: the role it claims.
        server_hotkey: the server it expects; ``None`` accepts any server (first contact).
    """

    keypair: Keypair
    role: str
    server_hotkey: str | None = None

    def __post_init__(self) -> None:
        self.client_nonce = secrets.token_hex(32)
        self._transcript: dict[str, str] | None = None

    def receive_challenge(self, challenge: object) -> AuthResponse:
        if not isinstance(challenge, AuthChallenge):
            raise HandshakeError("expected auth.challenge first", code="auth_expected")
        if self.server_hotkey is not None and challenge.server_hotkey != self.server_hotkey:
            raise HandshakeError(
                f"server identifies as {challenge.server_hotkey}, expected {self.server_hotkey}",
                close_code=CLOSE_FORBIDDEN,
                code="wrong_server",
            )
        self.server_hotkey = challenge.server_hotkey
        self._transcript = _transcript(
            self.role, self.keypair.hotkey, challenge.server_hotkey, challenge.nonce, self.client_nonce
        )
        return AuthResponse(
            role=self.role,
            hotkey=self.keypair.hotkey,
            client_nonce=self.client_nonce,
            signature=self.keypair.sign(CLIENT_PURPOSE, self._transcript),
        )

    def receive_ok(self, ok: object) -> None:
        """Check the server's proof; raise :class:`HandshakeError` if it does not hold."""
        if self._transcript is None or self.server_hotkey is None:
            raise HandshakeError("auth.ok before auth.challenge", code="auth_expected")
        if not isinstance(ok, AuthOk):
            raise HandshakeError("expected auth.ok", code="auth_expected")
        try:
            verify_payload(self.server_hotkey, SERVER_PURPOSE, self._transcript, ok.signature)
        except SignatureError as exc:
            raise HandshakeError("server failed to prove its hotkey", code="bad_server_signature") from exc
