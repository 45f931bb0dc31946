"""The websocket consumer base shared by the facilitator and the miner (DESIGN.md §3).

It runs the server side of the handshake, then parses every frame with the consumer's
``inbound`` union and calls ``frame_<type>`` (``job.cancel`` → ``frame_job_cancel``), the way
Channels maps channel-layer events to methods. A malformed, unknown or unhandled frame is
answered with an ``error`` frame; it never closes the connection or touches other jobs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from pydantic import TypeAdapter

from grid.identity import own_keypair
from protocol.errors import FrameError, HandshakeError
from protocol.handshake import ServerHandshake
from protocol.messages import AUTH_FROM_CLIENT, Error, Heartbeat, Message, parse_frame

__all__ = ["AuthenticatedConsumer"]

log = logging.getLogger("grid.consumers")
HANDSHAKE_TIMEOUT_S = 10.0


class AuthenticatedConsumer(AsyncWebsocketConsumer):
    """Subclasses set ``role`` and ``inbound`` and implement ``is_allowed`` and ``frame_*`` methods."""

    role: ClassVar[str]
    inbound: ClassVar[TypeAdapter[Any]]

    peer_hotkey: str | None = None

    async def connect(self) -> None:
        await self.accept()
        self._handshake = ServerHandshake(own_keypair(), self.role)
        self._handshake_timer = asyncio.get_running_loop().call_later(
            HANDSHAKE_TIMEOUT_S, lambda: asyncio.ensure_future(self._refuse(HandshakeError("handshake timed out")))
        )
        await self.send_message(self._handshake.challenge())

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels runs close_old_connections in a worker thread before every handler: a thread
        # hop per frame. Our database work goes through database_sync_to_async, which already
        # manages connections, so call the handler directly.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        if message["type"].startswith("websocket."):
            await handler(message)
            return
        try:
            await handler(message)
        except Exception:
            # An event from the channel layer that we fail to relay must not take the whole
            # connection (and every other job on it) down with it.
            log.exception("%s failed handling channel event %s", type(self).__name__, message["type"])

    async def frame_error(self, message: Error) -> None:
        # The peer could not act on something we sent; answering its error would only echo.
        log.warning(
            "%s %s… reports %s: %s (ref %s)",
            self.role,
            str(self.peer_hotkey)[:12],
            message.code,
            message.message,
            message.ref,
        )

    async def is_allowed(self, hotkey: str) -> bool:
        raise NotImplementedError(f"{type(self).__name__}.is_allowed() must be implemented")

    async def authenticated(self) -> None:
        """Called once the peer proved an allowed hotkey (``self.peer_hotkey``)."""

    async def send_message(self, message: Message) -> None:
        await self.send(text_data=message.encode())

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = text_data if text_data is not None else bytes_data or b""
        if self.peer_hotkey is None:
            await self._receive_handshake(frame)
            return
        try:
            message = parse_frame(frame, self.inbound)
        except FrameError as exc:
            await self.send_message(Error(code=exc.code, message=exc.message))
            return
        if isinstance(message, Heartbeat):
            return
        handler = getattr(self, "frame_" + message.type.replace(".", "_"), None)
        if handler is None:
            await self.send_message(Error(code="unsupported", message=f"{message.type} is not accepted here"))
            return
        try:
            await handler(message)
        except Exception:
            log.exception("%s failed handling %s", type(self).__name__, message.type)
            await self.send_message(
                Error(
                    code="internal_error",
                    message=f"could not handle {message.type}",
                    ref=getattr(message, "job_id", None),
                )
            )

    async def _receive_handshake(self, frame: str | bytes) -> None:
        try:
            response = parse_frame(frame, AUTH_FROM_CLIENT)
            hotkey = self._handshake.verify(response)
            if not await self.is_allowed(hotkey):
                raise self._handshake.forbid()
        except (FrameError, HandshakeError) as exc:
            if isinstance(exc, FrameError):
                exc = HandshakeError(f"expected auth.response: {exc.message}", code="auth_expected")
            await self._refuse(exc)
            return
        self._handshake_timer.cancel()
        self.peer_hotkey = hotkey
        await self.send_message(self._handshake.accept())
        await self.authenticated()

    async def _refuse(self, exc: HandshakeError) -> None:
        if self.peer_hotkey is not None:
            return
        log.warning("%s handshake refused: %s", self.role, exc)
        await self.close(code=exc.close_code, reason=str(exc)[:120])

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        timer = getattr(self, "_handshake_timer", None)
        if timer is not None:
            timer.cancel()
        await super().websocket_disconnect(message)
