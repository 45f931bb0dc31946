"""The websocket consumer base shared by the facilitator and the miner (DESIGN.md §3).

It runs the server side of the handshake, then parses every frame with the consumer's
``inbound`` union and calls ``frame_<type>`` (``job.cancel`` → ``frame_job_cancel``), the way
Channels maps channel-layer events to methods. A malformed, unknown or unhandled frame is
answered with an ``error`` frame; it never closes the connection or touches other jobs.

Limits per ``role`` (``settings.GRID_WS_LIMITS``, docs/configuration.md#limits), counted in this
process: once the handshake has proved an allowed hotkey, a connection beyond the hotkey's
``connections`` is closed with 4429 and a reason; frames beyond ``frame_rate`` a second (bursts of
``frame_burst``) are dropped and the peer told with an ``error{code: rate_limited}`` (at most once
a second); a peer that keeps flooding after that is closed with 4429. The server closes a frame
over ``GRID_MAX_FRAME_BYTES`` with 1009 before it reaches a consumer (grid/serve.py), and one over
``MAX_HANDSHAKE_FRAME_BYTES`` (64 KiB) before the handshake completes (node/ws_limits.py); the
consumer refuses the latter too, unparsed, whatever server carries it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from pydantic import TypeAdapter

from node.identity import own_keypair
from protocol.errors import FrameError, HandshakeError
from protocol.handshake import CLOSE_TOO_BIG, MAX_HANDSHAKE_FRAME_BYTES, ServerHandshake
from protocol.messages import AUTH_FROM_CLIENT, Error, Heartbeat, Message, parse_frame
from protocol.messages.base import parse_frames
from protocol.ratelimit import Admission, ConnectionLimiter, FrameGate, FrameVerdict
from protocol.transport import FrameBatch, handler_name

__all__ = ["CLOSE_TOO_MANY", "AuthenticatedConsumer", "open_connections"]

log = logging.getLogger("grid.consumers")
HANDSHAKE_TIMEOUT_S = 10.0
CLOSE_TOO_MANY = 4429  # the 4xxx twin of HTTP 429, as 4401/4403 are of 401/403

# Connections open per hotkey, one table per consumer class: the only state consumers share.
_OPEN: dict[str, ConnectionLimiter] = {}


def open_connections(consumer: type[AuthenticatedConsumer]) -> ConnectionLimiter | None:
    """The table counting ``consumer``'s connections per hotkey; ``None`` if its role is unlimited."""
    limit = int(_role_limits(consumer.role).get("connections", 0))
    name = f"{consumer.__module__}.{consumer.__qualname__}"
    if limit <= 0:
        return None
    table = _OPEN.get(name)
    if table is None:
        table = _OPEN[name] = ConnectionLimiter(limit, max_keys=settings.GRID_LIMITS_MAX_KEYS)
    table.limit = limit  # read on every use: settings may change under tests
    return table


def _role_limits(role: str) -> dict[str, float]:
    return getattr(settings, "GRID_WS_LIMITS", {}).get(role, {})


def _over_handshake_cap(frame: str | bytes) -> bool:
    limit = MAX_HANDSHAKE_FRAME_BYTES
    if isinstance(frame, bytes) or not limit // 4 < len(frame) <= limit:
        return len(frame) > limit  # a character is 1 to 4 UTF-8 bytes: the count decides
    return len(frame.encode("utf-8", "surrogatepass")) > limit


class AuthenticatedConsumer(AsyncWebsocketConsumer):
    """Subclasses set ``role`` and ``inbound`` and implement ``is_allowed`` and ``frame_*`` methods."""

    role: ClassVar[str]
    inbound: ClassVar[TypeAdapter[Any]]

    peer_hotkey: str | None = None
    _counted: ConnectionLimiter | None = None  # where this connection is counted, once admitted
    _gate: FrameGate | None = None
    _closing = False
    _batch: FrameBatch | None = None  # once auth.ok is out: the peer's handshake reads one frame at a time

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

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        """Frames sent once the peer is authenticated wait for the end of this turn of the event
        loop, and go out together: one websocket message (a batch) for all of them. Anything
        else (a close, bytes) first sends what waits, so the order is kept."""
        if self._batch is not None and text_data is not None and bytes_data is None and not close:
            self._batch.add(text_data)
            return
        await self._sent_all()
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        await self._sent_all()
        await super().close(code=code, reason=reason)

    async def _sent_all(self) -> None:
        if self._batch is None:
            return
        try:
            await self._batch.flush()
        except Exception as exc:  # the connection is gone: the protocol resends what it carried
            log.debug("%s %s…: frames not sent: %s", self.role, str(self.peer_hotkey)[:12], exc)

    async def _write(self, text: str) -> None:
        await super().send(text_data=text)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self._closing:
            return  # closed by us: what the peer still sends is of no use
        frame = text_data if text_data is not None else bytes_data or b""
        if self.peer_hotkey is None:
            if _over_handshake_cap(frame):
                self._closing = True
                reason = f"frame exceeds the handshake's limit of {MAX_HANDSHAKE_FRAME_BYTES} bytes"
                await self._refuse(HandshakeError(reason, close_code=CLOSE_TOO_BIG, code="frame_too_large"))
                return
            await self._receive_handshake(frame)
            return
        if not await self._admitted():
            return
        try:
            parsed = parse_frames(frame, self.inbound)
        except FrameError as exc:
            await self.send_message(Error(code=exc.code, message=exc.message))
            return
        for index, item in enumerate(parsed):
            # Each frame of a batch counts against the rate as a frame of its own would.
            if self._closing or (index and not await self._admitted()):
                return
            if isinstance(item, FrameError):
                await self.send_message(Error(code=item.code, message=item.message))
            else:
                await self._handle(item)

    async def _admitted(self) -> bool:
        if self._gate is None:
            return True
        verdict = self._gate.check()
        if verdict is FrameVerdict.ACCEPT:
            return True
        await self._throttle(self._gate, verdict)
        return False

    async def _handle(self, message: Message) -> None:
        if isinstance(message, Heartbeat):
            return
        handler = getattr(self, handler_name(message.type), None)
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
        if not await self._admit(hotkey):
            return
        self.peer_hotkey = hotkey
        limits = _role_limits(self.role)
        rate, burst = float(limits.get("frame_rate", 0)), float(limits.get("frame_burst", 0))
        if rate > 0:
            self._gate = FrameGate(rate, max(burst, 1.0))
        await self.send_message(self._handshake.accept())
        self._batch = FrameBatch(self._write)
        await self.authenticated()

    async def _admit(self, hotkey: str) -> bool:
        """Count this connection against the hotkey's limit; close it with 4429 if over."""
        table = open_connections(type(self))
        if table is None:
            return True
        admission = table.acquire(hotkey)
        if admission is Admission.ADMITTED:
            self._counted = table
            return True
        log.warning("%s %s… refused: %s (%d open)", self.role, hotkey[:12], admission.value, table.count(hotkey))
        self._closing = True
        await self.close(code=CLOSE_TOO_MANY, reason=admission.value)
        return False

    async def _throttle(self, gate: FrameGate, verdict: FrameVerdict) -> None:
        rate = f"{gate.rate:g}"
        if verdict is FrameVerdict.WARN:
            await self.send_message(
                Error(code="rate_limited", message=f"frame dropped: more than {rate} frames a second; slow down")
            )
        elif verdict is FrameVerdict.CLOSE:
            log.warning(
                "%s %s… closed: kept flooding (%d frames dropped)",
                self.role,
                str(self.peer_hotkey)[:12],
                gate.refused,
            )
            self._closing = True
            await self.close(code=CLOSE_TOO_MANY, reason=f"too many frames: kept sending more than {rate} a second")

    async def _refuse(self, exc: HandshakeError) -> None:
        if self.peer_hotkey is not None:
            return
        log.warning("%s handshake refused: %s", self.role, exc)
        await self.close(code=exc.close_code, reason=str(exc)[:120])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # However the consumer ended (a crash skips websocket_disconnect): a connection that
            # is gone must not keep counting against its hotkey's limit, or the peer is locked out.
            self._release()

    def _release(self) -> None:
        if self._counted is not None and self.peer_hotkey is not None:
            self._counted.release(self.peer_hotkey)
            self._counted = None

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        timer = getattr(self, "_handshake_timer", None)
        if timer is not None:
            timer.cancel()
        self._release()
        await super().websocket_disconnect(message)
