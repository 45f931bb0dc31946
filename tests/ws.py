"""Websocket peers for consumer tests: the party that dials a consumer, over Channels' communicator."""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from typing import Any

from channels.testing import WebsocketCommunicator
from pydantic import TypeAdapter

from node.identity import own_keypair
from protocol.handshake import ClientHandshake
from protocol.keys import Keypair
from protocol.messages import AUTH_FROM_SERVER, AuthChallenge, Message, parse_frame
from protocol.messages.base import parse_frames

__all__ = ["QUIET_S", "TIME_SCALE", "WAIT_S", "Peer", "close_all", "frames_in", "handshake", "open_peer"]

TIME_SCALE = float(os.environ.get("GRID_TEST_TIME_SCALE", "1"))
WAIT_S = 2.0 * TIME_SCALE
QUIET_S = 0.2 * TIME_SCALE


def frames_in(data: str | bytes, adapter: TypeAdapter[Any]) -> list[Any]:
    """The messages of one websocket message (a frame, or a batch of them); a test peer's
    reader, so a frame that does not parse fails the test."""
    parsed = parse_frames(data, adapter)
    for item in parsed:
        if isinstance(item, Exception):
            raise item
    return parsed


class Peer:
    """One websocket connection to a consumer, seen from the party that dialled it."""

    def __init__(self, communicator: WebsocketCommunicator, receives: TypeAdapter[Any]) -> None:
        self.communicator = communicator
        self.receives = receives
        self.challenge: AuthChallenge | None = None
        self.received: deque[Any] = deque()  # the rest of a batch

    async def send(self, frame: Message | dict[str, Any] | str) -> None:
        if isinstance(frame, Message):
            frame = frame.encode()
        elif isinstance(frame, dict):
            frame = json.dumps(frame)
        await self.communicator.send_to(text_data=frame)

    async def receive(self, *, skip: tuple[str, ...] = ()) -> Any:
        """The next frame, parsed (a batch's frames one by one); those of the types in ``skip``
        are passed over."""
        while True:
            while not self.received:
                self.received.extend(frames_in(await self.communicator.receive_from(WAIT_S), self.receives))
            message = self.received.popleft()
            if message.type not in skip:
                return message

    async def expect_nothing(self, timeout: float = QUIET_S, *, skip: tuple[str, ...] = ()) -> None:
        pending = [message for message in self.received if message.type not in skip]
        self.received.clear()
        if pending:
            raise AssertionError(f"unexpected frames: {pending}")
        while not await self.communicator.receive_nothing(timeout):
            output = await self.communicator.receive_output(WAIT_S)
            if output.get("type") == "websocket.send":
                messages = frames_in(output.get("text") or output.get("bytes") or "", self.receives)
                if all(message.type in skip for message in messages):
                    continue
            raise AssertionError(f"unexpected frame: {output}")

    async def closed_with(self) -> tuple[int, str]:
        """Wait for the server to close; return its close code and reason."""
        output = await self.communicator.receive_output(WAIT_S)
        assert output["type"] == "websocket.close", output
        return output.get("code", 1000), output.get("reason", "")

    async def disconnect(self, code: int = 1000) -> None:
        await self.communicator.disconnect(code)


async def handshake(peer: Peer, challenge: AuthChallenge, keypair: Keypair, role: str) -> None:
    """The client side of the handshake, pinned to this server's own hotkey."""
    client = ClientHandshake(keypair, role, server_hotkey=own_keypair().hotkey)
    await peer.send(client.receive_challenge(challenge))
    client.receive_ok(parse_frame(await peer.communicator.receive_from(WAIT_S), AUTH_FROM_SERVER))


async def open_peer(
    app: Any,
    path: str,
    keypair: Keypair | None,
    role: str,
    receives: TypeAdapter[Any],
    opened: list[WebsocketCommunicator],
) -> Peer:
    """Connect to ``path``; authenticate with ``keypair`` as ``role`` unless ``keypair`` is None."""
    communicator = WebsocketCommunicator(app, path)
    opened.append(communicator)
    connected, _ = await communicator.connect(WAIT_S)
    assert connected
    peer = Peer(communicator, receives)
    challenge = parse_frame(await communicator.receive_from(WAIT_S), AUTH_FROM_SERVER)
    assert isinstance(challenge, AuthChallenge)
    assert challenge.server_hotkey == own_keypair().hotkey
    peer.challenge = challenge
    if keypair is not None:
        await handshake(peer, challenge, keypair, role)
    return peer


async def close_all(opened: list[WebsocketCommunicator]) -> None:
    # Together: on a Redis layer each consumer takes the communicator's whole 1 s timeout to stop.
    await asyncio.gather(*(communicator.disconnect() for communicator in opened))
