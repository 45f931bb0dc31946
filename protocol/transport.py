"""The one websocket client helper every dialing party uses (DESIGN.md §3).

:func:`connect` opens a socket and runs the handshake; :class:`ReconnectingClient` keeps one
connection up for a long-running party (validator → facilitator, validator → miner, SDK events):
reconnect with :func:`~protocol.retry.backoff`, heartbeat, an outbox that survives reconnects,
and an ``on_connect`` hook to re-announce state. Bad incoming frames are answered with an
``error`` frame and skipped; they never end the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any

import websockets
from pydantic import TypeAdapter
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from protocol.errors import ConnectionLost, FrameError, HandshakeError
from protocol.handshake import ClientHandshake
from protocol.keys import Keypair
from protocol.messages import AUTH_FROM_SERVER, Error, Heartbeat, Message, parse_frame
from protocol.messages.base import MAX_BATCH, MAX_FRAME_BYTES, join_frames, parse_frames
from protocol.retry import backoff

__all__ = [
    "Connection",
    "ConnectionLost",
    "FrameBatch",
    "FrameHandlers",
    "ReconnectingClient",
    "connect",
    "handler_name",
]

log = logging.getLogger("grid.transport")

HEARTBEAT_S = 15.0
OPEN_TIMEOUT_S = 10.0


class FrameBatch:
    """Encoded frames that wait for the end of this turn of the event loop, then go out together
    (:func:`~protocol.messages.base.join_frames`) through ``write``: one websocket message for
    all a busy party sent meanwhile. The servers' consumers and :class:`Connection` both use it."""

    def __init__(self, write: Callable[[str], Awaitable[None]]) -> None:
        self._write = write
        self._waiting: list[str] = []
        self._flushing: asyncio.Future[None] | None = None

    def add(self, frame: str) -> None:
        """Queue ``frame``; a flush of its own writes it at the end of this turn (a write that
        fails there is left for the connection's next send or receive to report)."""
        self._waiting.append(frame)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush_quietly())

    async def write(self, frame: str) -> None:
        """Write ``frame`` now, after (and with) what waits. Raises what ``write`` raises."""
        self._waiting.append(frame)
        await self.flush()

    async def flush(self) -> None:
        """Write what waits, in order: after a flush already under way. Raises what ``write`` raises."""
        flushing = self._flushing
        if flushing is not None and not flushing.done() and flushing is not asyncio.current_task():
            await asyncio.shield(flushing)
        while self._waiting:
            frames, self._waiting = self._waiting, []
            for text in join_frames(frames):
                await self._write(text)

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # the connection is gone; the protocol resends what it carried
            self._waiting = []
            log.debug("frames not sent: %s", exc)


class Connection:
    """An authenticated websocket carrying messages of one union each way."""

    def __init__(self, ws: ClientConnection, adapter: TypeAdapter[Any], peer_hotkey: str) -> None:
        self.ws = ws
        self.adapter = adapter
        self.peer_hotkey = peer_hotkey
        self._received: deque[Message] = deque()  # the rest of a batch
        self._batch = FrameBatch(self._send_text)  # frames sent with send_soon, not written yet

    def __repr__(self) -> str:
        return f"<Connection to {self.peer_hotkey[:12]}…>"

    async def send(self, message: Message) -> None:
        """Send ``message`` (and, ahead of it, whatever :meth:`send_soon` left waiting: one batch).

        Raises:
            ConnectionLost: the connection is closed.
        """
        await self._batch.write(message.encode())

    def send_soon(self, message: Message) -> None:
        """Send ``message`` at the end of this turn of the event loop, in one batch with whatever
        else is sent by then (a job's stage frame and its end, when nothing was left to do between
        them). A connection lost meanwhile is for the next :meth:`send` or :meth:`recv` to report."""
        self._batch.add(message.encode())

    async def send_frames(self, frames: list[str]) -> None:
        """Encoded frames, batched into as few websocket messages as the limits allow."""
        for text in join_frames(frames):
            await self._send_text(text)

    async def _send_text(self, text: str) -> None:
        try:
            await self.ws.send(text)
        except ConnectionClosed as exc:
            raise ConnectionLost(exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "") from exc

    async def recv(self) -> Message:
        """The next valid message; malformed frames are answered and skipped."""
        while not self._received:
            try:
                frame = await self.ws.recv()
            except ConnectionClosed as exc:
                raise ConnectionLost(exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "") from exc
            try:
                parsed = parse_frames(frame, self.adapter)
            except FrameError as exc:
                parsed = [exc]
            for item in parsed:
                if isinstance(item, FrameError):
                    log.warning("bad frame from %s: %s", self.peer_hotkey[:12], item)
                    await self.send(Error(code=item.code, message=item.message))
                elif not isinstance(item, Heartbeat):
                    self._received.append(item)
        return self._received.popleft()

    async def close(self) -> None:
        with contextlib.suppress(ConnectionLost):
            await self._batch.flush()
        await self.ws.close()


async def connect(
    url: str,
    keypair: Keypair,
    role: str,
    adapter: TypeAdapter[Any],
    *,
    server_hotkey: str | None = None,
    open_timeout: float = OPEN_TIMEOUT_S,
) -> Connection:
    """Open ``url`` and authenticate as ``role``.

    Raises:
        HandshakeError: the server refused us (``close_code`` 4401/4403) or failed to prove its key.
        OSError: the server could not be reached.
    """
    try:
        ws = await websockets.connect(
            url, open_timeout=open_timeout, max_size=MAX_FRAME_BYTES, ping_interval=20, ping_timeout=20
        )
    except InvalidStatus as exc:
        raise OSError(f"{url} answered HTTP {exc.response.status_code}") from exc
    except InvalidHandshake as exc:
        raise OSError(f"{url}: {exc}") from exc
    handshake = ClientHandshake(keypair, role, server_hotkey)
    try:
        async with asyncio.timeout(open_timeout):
            challenge = parse_frame(await ws.recv(), AUTH_FROM_SERVER)
            await ws.send(handshake.receive_challenge(challenge).encode())
            answer = parse_frame(await ws.recv(), AUTH_FROM_SERVER)
            if isinstance(answer, Error):
                raise HandshakeError(answer.message, code=answer.code)
            handshake.receive_ok(answer)
    except ConnectionClosed as exc:
        rcvd = exc.rcvd
        raise HandshakeError(
            rcvd.reason if rcvd else "closed during handshake", close_code=rcvd.code if rcvd else 4401
        ) from exc
    except FrameError as exc:
        await ws.close()
        raise HandshakeError(f"unexpected handshake frame: {exc.message}", code="auth_expected") from exc
    except (HandshakeError, TimeoutError):
        await ws.close()
        raise
    assert handshake.server_hotkey is not None  # set by receive_challenge
    return Connection(ws, adapter, handshake.server_hotkey)


Handler = Callable[[Connection, Message], Awaitable[None]]


def handler_name(message_type: str) -> str:
    """The method that handles a frame of ``message_type``: ``job.cancel`` → ``frame_job_cancel``.

    One rule for both ends: the server consumers (node/consumers.py) and the dialing clients
    (:class:`FrameHandlers`), the way Channels maps channel-layer events to methods.
    """
    return "frame_" + message_type.replace(".", "_")


class FrameHandlers:
    """The client side's ``type → handler`` dispatch: pass :meth:`handle_frame` as a
    :class:`ReconnectingClient`'s handler and implement ``frame_<name>(message)`` methods.

    A frame with no handler is logged and answered ``error{code: unsupported}`` (an ``error``
    frame is only logged: answering it would echo errors back and forth), so nothing the peer
    sends is dropped unseen. ``connection`` is the one the frame arrived on, for the handlers
    that answer on it.
    """

    peer_name: str = "peer"

    async def handle_frame(self, connection: Connection, message: Message) -> None:
        handler = getattr(self, handler_name(message.type), None)
        if handler is not None:
            await handler(message)
            return
        ref = getattr(message, "job_id", None)
        if isinstance(message, Error):
            log.warning("%s reports %s: %s (ref %s)", self.peer_name, message.code, message.message, message.ref)
            return
        log.warning("%s sent %s, which is not accepted here (ref %s)", self.peer_name, message.type, ref)
        await connection.send(Error(code="unsupported", message=f"{message.type} is not accepted here", ref=ref))


class ReconnectingClient:
    """Keeps an authenticated connection up and hands every incoming message to ``handler``.

    Messages given to :meth:`send` wait in an outbox while disconnected and go out in order
    once connected; receivers treat them idempotently, so a resend after a reconnect is safe.
    A message sent with an ``ack_key`` is also kept until :meth:`acknowledge` names that key,
    and goes out again after every reconnect until then: a frame written to a connection that
    died is not known to have been acted on.
    """

    def __init__(
        self,
        url: str,
        keypair: Keypair,
        role: str,
        adapter: TypeAdapter[Any],
        handler: Handler,
        *,
        server_hotkey: str | None = None,
        on_connect: Callable[[Connection], Awaitable[None]] | None = None,
        on_disconnect: Callable[[], Awaitable[None]] | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        name: str = "",
    ) -> None:
        self.url, self.keypair, self.role, self.adapter = url, keypair, role, adapter
        self.handler, self.server_hotkey = handler, server_hotkey
        self.on_connect, self.on_disconnect = on_connect, on_disconnect
        self.heartbeat_s = heartbeat_s
        self.name = name or url
        self.connected = asyncio.Event()
        self.connection: Connection | None = None
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._unacked: dict[Hashable, Message] = {}  # in the order first sent
        self._stopping = False

    def __repr__(self) -> str:
        return f"<ReconnectingClient {self.name} {'up' if self.connected.is_set() else 'down'}>"

    def send(self, message: Message, ack_key: Hashable | None = None) -> None:
        """Queue ``message``; it is sent as soon as the connection is up.

        With ``ack_key`` it is resent after each reconnect until :meth:`acknowledge` names the key.
        """
        if ack_key is not None:
            self._unacked.setdefault(ack_key, message)
        self._outbox.put_nowait(message)

    def acknowledge(self, keys: Iterable[Hashable]) -> None:
        """The peer has acted on the messages of these keys: stop resending them."""
        for key in keys:
            self._unacked.pop(key, None)

    @property
    def unacknowledged(self) -> int:
        """How many messages sent with an ``ack_key`` the peer has not acknowledged yet."""
        return len(self._unacked)

    async def run_forever(self) -> None:
        delays = backoff()
        while not self._stopping:
            try:
                connection = await connect(
                    self.url, self.keypair, self.role, self.adapter, server_hotkey=self.server_hotkey
                )
            except HandshakeError as exc:
                log.error("%s refused us: %s (%s)", self.name, exc, getattr(exc, "close_code", ""))
                await asyncio.sleep(next(delays) * 10)
                continue
            except (OSError, TimeoutError) as exc:
                log.info("%s unreachable: %s", self.name, exc)
                await asyncio.sleep(next(delays))
                continue
            delays = backoff()
            self.server_hotkey = connection.peer_hotkey
            await self._serve(connection)

    async def _serve(self, connection: Connection) -> None:
        self.resend_unacknowledged()
        self.connection = connection
        self.connected.set()
        log.info("connected to %s", self.name)
        tasks = [asyncio.create_task(self._reader(connection)), asyncio.create_task(self._writer(connection))]
        try:
            if self.on_connect is not None:
                await self.on_connect(connection)
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            self.connected.clear()
            self.connection = None
            with contextlib.suppress(Exception):
                await connection.close()
            log.info("disconnected from %s", self.name)
            if self.on_disconnect is not None:
                await self.on_disconnect()

    async def _reader(self, connection: Connection) -> None:
        try:
            while True:
                message = await connection.recv()
                try:
                    await self.handler(connection, message)
                except Exception:
                    log.exception("%s: handler failed on %s", self.name, message.type)
        except ConnectionLost:
            return

    async def _writer(self, connection: Connection) -> None:
        try:
            while True:
                try:
                    message = await asyncio.wait_for(self._outbox.get(), self.heartbeat_s)
                except TimeoutError:
                    await connection.send(Heartbeat())
                    continue
                # What else is queued goes in the same websocket message: one write, one read.
                batch = [message]
                while len(batch) < MAX_BATCH and not self._outbox.empty():
                    batch.append(self._outbox.get_nowait())
                try:
                    await connection.send_frames([queued.encode() for queued in batch])
                except ConnectionLost:
                    # Keep them for the next connection, at the front of the line.
                    self._requeue_front(batch)
                    return
        except ConnectionLost:
            return

    def resend_unacknowledged(self) -> None:
        """Put every unacknowledged message at the front of the outbox, each once, in sending order
        (on a new connection, or when the peer dropped them without the connection ending)."""
        if not self._unacked:
            return
        queued = []
        while not self._outbox.empty():
            queued.append(self._outbox.get_nowait())
        pending = list(self._unacked.values())
        already = {id(message) for message in pending}
        for message in [*pending, *(message for message in queued if id(message) not in already)]:
            self._outbox.put_nowait(message)

    def _requeue_front(self, messages: list[Message]) -> None:
        rest = []
        while not self._outbox.empty():
            rest.append(self._outbox.get_nowait())
        for item in messages:
            self._outbox.put_nowait(item)
        for item in rest:
            self._outbox.put_nowait(item)

    async def stop(self) -> None:
        self._stopping = True
        if self.connection is not None:
            await self.connection.close()
