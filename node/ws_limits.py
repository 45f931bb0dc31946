"""Websocket frames before the handshake: at most what a handshake needs (docs/configuration.md#limits).

A peer's first message on any of our websockets is its ``auth.response`` (a few hundred bytes),
yet the server would read a message up to ``GRID_MAX_FRAME_BYTES`` (16 MiB by default) from
anyone who connects. :class:`HandshakeCappedWebSockets`, uvicorn's sans-I/O websocket protocol
as ``python -m grid.serve`` runs it, caps that first message at
:data:`~protocol.handshake.MAX_HANDSHAKE_FRAME_BYTES` (64 KiB): a larger one is refused by
websockets' frame parser, before its payload is read, with close code 1009 and a reason. Every
later message has the configured limit again. The consumer base (:mod:`node.consumers`) checks the
same cap, for servers that are not this one (Channels' test communicator).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol

from protocol.handshake import MAX_HANDSHAKE_FRAME_BYTES

__all__ = ["FirstMessageCapped", "HandshakeCappedWebSockets"]

_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class FirstMessageCapped(ServerProtocol):
    """websockets' server protocol with the first data message held to the handshake's cap."""

    def __init__(self, *, max_size: int | None, **kwargs: Any) -> None:
        first = MAX_HANDSHAKE_FRAME_BYTES if max_size is None else min(max_size, MAX_HANDSHAKE_FRAME_BYTES)
        super().__init__(max_size=first, **kwargs)
        self._later_max_size: int | None = max_size
        self._first_received = False

    def recv_frame(self, frame: Frame) -> None:
        super().recv_frame(frame)
        # The parser reads the limit afresh before each frame, so the next one gets the full limit.
        if not self._first_received and frame.fin and frame.opcode in _DATA:
            self._first_received = True
            self.max_message_size = self._later_max_size


class HandshakeCappedWebSockets(WebSocketsSansIOProtocol):
    """What ``uvicorn.run(ws=...)`` takes: uvicorn's protocol over :class:`FirstMessageCapped`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = FirstMessageCapped(
            extensions=self.conn.available_extensions, max_size=self.config.ws_max_size, logger=self.conn.logger
        )
