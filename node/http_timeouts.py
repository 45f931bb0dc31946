"""Slow HTTP clients: deadlines uvicorn does not keep by itself (docs/configuration.md#limits).

Uvicorn closes a kept-alive connection that stays idle (``timeout_keep_alive``), but a
connection that sends half a request line and stalls (slowloris), or a body that stops halfway,
holds its socket and its memory forever. :class:`TimedHttpToolsProtocol` adds:

* a **head deadline**: a request's line and headers must arrive within ``header_timeout``
  seconds of the connection opening, or of the next request's first byte; else ``408`` and
  the connection is closed. Time spent by the application on a request never counts.
* a **head size**: at most ``max_header_bytes`` before the headers end; else ``431``, closed.
* a **body deadline**: while a request body is being received, a pause of ``body_timeout``
  seconds closes the connection (the application sees a disconnect). A pause the server caused
  (it stopped reading because the application is behind: flow control) never counts.

Websocket upgrades leave these deadlines behind: the consumer's handshake timer takes over
(node/consumers.py). :meth:`TimedHttpToolsProtocol.configured` makes a subclass with the limits
as class attributes, which is what ``uvicorn.run(http=...)`` takes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = ["TimedHttpToolsProtocol"]

log = logging.getLogger("grid.serve")
LINGER_S = 2.0


class TimedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout: float = 20.0
    body_timeout: float = 60.0
    max_header_bytes: int = 64 * 1024

    @classmethod
    def configured(
        cls, *, header_timeout: float, body_timeout: float, max_header_bytes: int
    ) -> type[TimedHttpToolsProtocol]:
        """A subclass with these limits (0 turns one off)."""
        limits = {"header_timeout": header_timeout, "body_timeout": body_timeout, "max_header_bytes": max_header_bytes}
        return type(cls.__name__, (cls,), limits)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_head = True
        self._head_bytes = 0
        self._body_seen_at = 0.0
        self._draining = False

    # -- the connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return  # refused: what still arrives is read and dropped (see _refuse)
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Counted in whole reads, so the head may overshoot by one read (64-256 KiB) at most.
        if self._reading_head and 0 < self.max_header_bytes < self._head_bytes:
            self._refuse(431, f"request line and headers over {self.max_header_bytes} bytes")

    # -- the parser's callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout, self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._reading_head = False
        super().on_headers_complete()
        if self.parser.should_upgrade() and self._should_upgrade():
            return  # a websocket: no body, and the consumer keeps its own time
        self._body_seen_at = self.loop.time()
        self._arm(self.body_timeout, self._body_check)

    def on_body(self, body: bytes) -> None:
        self._body_seen_at = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_head, self._head_bytes = True, 0  # what comes next is the next request's head
        super().on_message_complete()

    # -- deadlines -----------------------------------------------------------------------------

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        if delay > 0:
            self._deadline = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        self._refuse(408, f"request line and headers not received within {self.header_timeout:g} s")

    def _body_check(self) -> None:
        self._deadline = None
        now = self.loop.time()
        paused = self.flow is not None and self.flow.read_paused
        if paused or (self.cycle is not None and self.cycle.waiting_for_100_continue):
            # We stopped reading (the application is behind), or the client waits for our
            # "100 Continue": it is not the one stalling.
            self._body_seen_at = now
        idle = now - self._body_seen_at
        if idle < self.body_timeout:
            self._arm(self.body_timeout - idle, self._body_check)
            return
        log.info("%s: request body stalled for %g s: connection closed", _peer(self.client), self.body_timeout)
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` if no response is under way, and close.

        A lingering close, as web servers do: the answer, then our end of the stream, then read
        and drop what the client still sends for :data:`LINGER_S`. Closing at once, with its
        bytes unread, would make the kernel reset the connection, and the client lose the answer.
        """
        self._disarm()
        if self.transport is None or self.transport.is_closing() or self._draining:
            return
        log.info("%s: %d %s", _peer(self.client), status, message)
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a response is under way: nothing we could add would parse
            return
        body = message.encode("ascii")
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self._draining = True
        self.flow.resume_reading()
        self._deadline = self.loop.call_later(LINGER_S, self.transport.close)


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown peer"
