"""The websocket client helper against a real server on loopback (protocol/transport.py).

The server side is written here with :class:`~protocol.handshake.ServerHandshake`, the way the
miner and facilitator consumers adapt it; the client side is the code under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from protocol.errors import FrameError, HandshakeError
from protocol.handshake import SERVER_PURPOSE, ServerHandshake
from protocol.keys import Keypair
from protocol.messages import (
    AUTH_FROM_CLIENT,
    FACILITATOR_TO_VALIDATOR,
    VALIDATOR_TO_FACILITATOR,
    AuthOk,
    Error,
    Heartbeat,
    JobCancel,
    JobReceived,
    JobStatusAck,
    Message,
    parse_frame,
)
from protocol.transport import Connection, ConnectionLost, FrameHandlers, ReconnectingClient, connect, handler_name
from tests.ws import frames_in

CLIENT = Keypair.generate()
ROLE = "validator"
# The client (a validator) receives facilitator → validator messages and sends validator → facilitator ones.
CLIENT_RECEIVES = FACILITATOR_TO_VALIDATOR
SERVER_RECEIVES = VALIDATOR_TO_FACILITATOR
WAIT_S = 2.0

Session = Callable[["HandshakeServer", ServerConnection, int], Awaitable[None]]


async def record_everything(server: HandshakeServer, ws: ServerConnection, index: int) -> None:
    """Default session: put every frame the client sends on ``server.inbox`` as (connection index, message)."""
    async for frame in ws:
        for message in frames_in(frame, SERVER_RECEIVES):
            await server.inbox.put((index, message))


class HandshakeServer:
    """A loopback websocket server that authenticates clients, then runs ``session`` on each connection."""

    def __init__(
        self, *, role: str = ROLE, allowed: set[str] | None = None, session: Session = record_everything
    ) -> None:
        self.keypair = Keypair.generate()
        self.role = role
        self.allowed = allowed
        self.session = session
        self.attempts = 0
        self.inbox: asyncio.Queue[tuple[int, Message]] = asyncio.Queue()
        self.url = ""

    @property
    def hotkey(self) -> str:
        return self.keypair.hotkey

    async def handler(self, ws: ServerConnection) -> None:
        index = self.attempts
        self.attempts += 1
        handshake = ServerHandshake(self.keypair, self.role)
        await ws.send(handshake.challenge().encode())
        try:
            try:
                response = parse_frame(await ws.recv(), AUTH_FROM_CLIENT)
            except ConnectionClosed:
                return  # the client gave up (it refused us)
            except FrameError as exc:
                raise HandshakeError(exc.message, code=exc.code) from exc
            handshake.verify(response)
            if self.allowed is not None and handshake.client_hotkey not in self.allowed:
                raise handshake.forbid("not registered")
        except HandshakeError as exc:
            await ws.close(exc.close_code, exc.message)
            return
        await ws.send(handshake.accept().encode())
        await self.session(self, ws, index)

    async def next_received(self) -> tuple[int, Message]:
        return await asyncio.wait_for(self.inbox.get(), WAIT_S)


Start = Callable[[Callable[[ServerConnection], Awaitable[None]]], Awaitable[str]]


@pytest.fixture
async def start_server() -> AsyncIterator[Start]:
    """Start websocket servers on 127.0.0.1, port 0; each call returns the server's ws:// URL."""
    servers: list[Server] = []

    async def start(handler: Callable[[ServerConnection], Awaitable[None]]) -> str:
        server = await serve(handler, "127.0.0.1", 0, close_timeout=0.5)
        servers.append(server)
        host, port = server.sockets[0].getsockname()[:2]
        return f"ws://{host}:{port}/"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


RunServer = Callable[[HandshakeServer], Awaitable[HandshakeServer]]


@pytest.fixture
async def run_server(start_server: Start) -> RunServer:
    async def run(server: HandshakeServer) -> HandshakeServer:
        """Serve ``server`` on loopback and return it with its URL set."""
        server.url = await start_server(server.handler)
        return server

    return run


async def dial(server: HandshakeServer, **options: Any) -> Connection:
    options.setdefault("server_hotkey", server.hotkey)
    return await connect(server.url, CLIENT, ROLE, CLIENT_RECEIVES, open_timeout=WAIT_S, **options)


async def refused(server: HandshakeServer, **options: Any) -> HandshakeError:
    with pytest.raises(HandshakeError) as info:
        await dial(server, **options)
    return info.value


# connect()


async def test_connect_authenticates_and_carries_messages_both_ways(run_server: RunServer) -> None:
    """connect() proves both identities, then messages flow each way through the direction unions."""

    async def echo_as_cancel(server: HandshakeServer, ws: ServerConnection, index: int) -> None:
        async for frame in ws:
            for message in frames_in(frame, SERVER_RECEIVES):
                await server.inbox.put((index, message))
                await ws.send(JobCancel(job_id=message.job_id, reason="echo").encode())

    server = await run_server(HandshakeServer(session=echo_as_cancel))
    connection = await dial(server)
    try:
        assert connection.peer_hotkey == server.hotkey
        assert repr(connection) == f"<Connection to {server.hotkey[:12]}…>"
        await connection.send(JobReceived(job_id="job-1"))
        assert await server.next_received() == (0, JobReceived(job_id="job-1"))
        assert await asyncio.wait_for(connection.recv(), WAIT_S) == JobCancel(job_id="job-1", reason="echo")
    finally:
        await connection.close()


async def test_connect_without_pinning_learns_the_server_hotkey(run_server: RunServer) -> None:
    """First contact (no pinned hotkey) succeeds and reports the hotkey the server proved."""
    server = await run_server(HandshakeServer())
    connection = await dial(server, server_hotkey=None)
    try:
        assert connection.peer_hotkey == server.hotkey
    finally:
        await connection.close()


async def test_connect_with_the_wrong_role_raises_handshake_error_4403(run_server: RunServer) -> None:
    """The server closes with 4403 for the wrong role; connect() raises HandshakeError with that close code."""
    server = await run_server(HandshakeServer(role="miner"))
    error = await refused(server)
    assert error.close_code == 4403
    assert error.message == "this endpoint is for role 'miner'"


async def test_connect_with_an_unregistered_hotkey_raises_handshake_error_4403(run_server: RunServer) -> None:
    """A proven but unregistered hotkey is closed with 4403 and the server's reason."""
    server = await run_server(HandshakeServer(allowed={Keypair.generate().hotkey}))
    error = await refused(server)
    assert error.close_code == 4403
    assert error.message == f"hotkey {CLIENT.hotkey} is not allowed as {ROLE}: not registered"


async def test_connect_to_a_server_with_another_hotkey_than_pinned_is_refused(run_server: RunServer) -> None:
    """The client refuses a server that is not the one it pinned, before answering the challenge."""
    server = await run_server(HandshakeServer())
    error = await refused(server, server_hotkey=Keypair.generate().hotkey)
    assert (error.close_code, error.code) == (4403, "wrong_server")
    assert server.inbox.empty()


async def test_connect_to_a_server_that_cannot_prove_its_hotkey_is_refused(start_server: Start) -> None:
    """An auth.ok signed by another key than the challenged hotkey fails with bad_server_signature."""
    real, impostor = Keypair.generate(), Keypair.generate()

    async def impostor_handler(ws: ServerConnection) -> None:
        handshake = ServerHandshake(real, ROLE)
        await ws.send(handshake.challenge().encode())
        response = parse_frame(await ws.recv(), AUTH_FROM_CLIENT)
        handshake.verify(response)
        transcript = {
            "role": ROLE,
            "client_hotkey": response.hotkey,
            "server_hotkey": real.hotkey,
            "nonce": handshake.nonce,
            "client_nonce": response.client_nonce,
        }
        assert real.sign(SERVER_PURPOSE, transcript) == handshake.accept().signature
        await ws.send(AuthOk(signature=impostor.sign(SERVER_PURPOSE, transcript)).encode())
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()

    url = await start_server(impostor_handler)
    with pytest.raises(HandshakeError) as info:
        await connect(url, CLIENT, ROLE, CLIENT_RECEIVES, server_hotkey=real.hotkey, open_timeout=WAIT_S)
    assert info.value.code == "bad_server_signature"


async def test_connect_answered_with_an_error_frame_raises_its_code(start_server: Start) -> None:
    """A server may answer the response with an error frame; connect() raises HandshakeError with its code."""
    server_key = Keypair.generate()

    async def erroring(ws: ServerConnection) -> None:
        await ws.send(ServerHandshake(server_key, ROLE).challenge().encode())
        await ws.recv()
        await ws.send(Error(code="registry_down", message="try later").encode())
        with contextlib.suppress(Exception):
            await ws.recv()

    url = await start_server(erroring)
    with pytest.raises(HandshakeError) as info:
        await connect(url, CLIENT, ROLE, CLIENT_RECEIVES, open_timeout=WAIT_S)
    assert (info.value.code, info.value.message) == ("registry_down", "try later")


async def test_connect_to_a_closed_port_raises_oserror() -> None:
    """Nothing listening is an OSError (the caller's retry loop treats it as unreachable)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(OSError):
        await connect(f"ws://127.0.0.1:{port}/", CLIENT, ROLE, CLIENT_RECEIVES, open_timeout=WAIT_S)


# Connection


async def test_recv_answers_malformed_frames_with_error_frames_and_continues(run_server: RunServer) -> None:
    """Bad frames are answered with error{code} and skipped, heartbeats are skipped, the next message arrives."""

    async def misbehave(server: HandshakeServer, ws: ServerConnection, index: int) -> None:
        for frame in ("not json", '{"type": "job.nope"}', '{"type": "job.cancel"}', Heartbeat().encode()):
            await ws.send(frame)
        await ws.send(JobCancel(job_id="job-1").encode())
        await record_everything(server, ws, index)

    server = await run_server(HandshakeServer(session=misbehave))
    connection = await dial(server)
    try:
        assert await asyncio.wait_for(connection.recv(), WAIT_S) == JobCancel(job_id="job-1")
        errors = [(await server.next_received())[1] for _ in range(3)]
        assert [(e.type, e.code) for e in errors] == [  # type: ignore[attr-defined]
            ("error", "bad_json"),
            ("error", "unknown_type"),
            ("error", "invalid_message"),
        ]
        assert errors[1].message == "unknown message type 'job.nope'"  # type: ignore[attr-defined]
        await connection.send(JobReceived(job_id="job-1"))
        assert await server.next_received() == (0, JobReceived(job_id="job-1"))
    finally:
        await connection.close()


async def test_recv_and_send_after_the_server_closes_raise_connection_lost(run_server: RunServer) -> None:
    """A closed socket surfaces as ConnectionLost carrying the close code and reason."""

    async def close_at_once(server: HandshakeServer, ws: ServerConnection, index: int) -> None:
        await ws.close(4000, "bye")

    server = await run_server(HandshakeServer(session=close_at_once))
    connection = await dial(server)
    with pytest.raises(ConnectionLost) as info:
        await asyncio.wait_for(connection.recv(), WAIT_S)
    assert (info.value.close_code, info.value.reason) == (4000, "bye")
    with pytest.raises(ConnectionLost):
        await connection.send(JobReceived(job_id="job-1"))


# ReconnectingClient


async def eventually(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not predicate():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(client: ReconnectingClient) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(client.run_forever())
    try:
        yield task
    finally:
        await client.stop()
        try:
            await asyncio.wait_for(task, WAIT_S)
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def test_reconnecting_client_reconnects_and_delivers_the_queued_outbox(run_server: RunServer) -> None:
    """After the server drops it, the client reconnects and sends, in order, what was queued while it was down."""

    async def drop_first_connection(server: HandshakeServer, ws: ServerConnection, index: int) -> None:
        await ws.send(JobCancel(job_id=f"hello-{index}").encode())
        if index == 0:
            await ws.close(1011, "restarting")
            return
        await record_everything(server, ws, index)

    server = await run_server(HandshakeServer(session=drop_first_connection))
    handled: asyncio.Queue[Message] = asyncio.Queue()
    connects: list[str] = []
    down_while_queueing: list[bool] = []

    async def handler(connection: Connection, message: Message) -> None:
        await handled.put(message)

    async def on_connect(connection: Connection) -> None:
        connects.append(connection.peer_hotkey)

    async def on_disconnect() -> None:
        if len(down_while_queueing) == 0:
            down_while_queueing.append(not client.connected.is_set())
            client.send(JobReceived(job_id="queued-1"))
            client.send(JobReceived(job_id="queued-2"))

    client = ReconnectingClient(
        server.url,
        CLIENT,
        ROLE,
        CLIENT_RECEIVES,
        handler,
        server_hotkey=server.hotkey,
        on_connect=on_connect,
        on_disconnect=on_disconnect,
        name="test-facilitator",
    )
    assert repr(client) == "<ReconnectingClient test-facilitator down>"
    async with running(client):
        assert await server.next_received() == (1, JobReceived(job_id="queued-1"))
        assert await server.next_received() == (1, JobReceived(job_id="queued-2"))
        assert await asyncio.wait_for(handled.get(), WAIT_S) == JobCancel(job_id="hello-0")
        assert await asyncio.wait_for(handled.get(), WAIT_S) == JobCancel(job_id="hello-1")
        assert down_while_queueing == [True]
        assert connects == [server.hotkey, server.hotkey]
        assert server.attempts == 2
        assert repr(client) == "<ReconnectingClient test-facilitator up>"


async def test_reconnecting_client_sends_messages_queued_before_the_first_connection(run_server: RunServer) -> None:
    """send() before the connection is up queues; the messages go out in order once connected."""
    server = await run_server(HandshakeServer())

    async def ignore(connection: Connection, message: Message) -> None:
        pass

    client = ReconnectingClient(server.url, CLIENT, ROLE, CLIENT_RECEIVES, ignore, server_hotkey=server.hotkey)
    for n in range(3):
        client.send(JobReceived(job_id=f"job-{n}"))
    async with running(client):
        received = [await server.next_received() for _ in range(3)]
    assert received == [(0, JobReceived(job_id=f"job-{n}")) for n in range(3)]


async def test_reconnecting_client_sends_what_waits_in_its_outbox_as_one_batch(run_server: RunServer) -> None:
    """Messages queued together leave in one websocket message (a batch), in order."""
    raw: asyncio.Queue[str | bytes] = asyncio.Queue()

    async def keep_raw(server: HandshakeServer, ws: ServerConnection, index: int) -> None:
        async for frame in ws:
            await raw.put(frame)

    server = await run_server(HandshakeServer(session=keep_raw))

    async def ignore(connection: Connection, message: Message) -> None:
        pass

    client = ReconnectingClient(server.url, CLIENT, ROLE, CLIENT_RECEIVES, ignore, server_hotkey=server.hotkey)
    queued = [JobReceived(job_id=f"job-{n}") for n in range(5)]
    for message in queued:
        client.send(message)
    async with running(client):
        first = await asyncio.wait_for(raw.get(), WAIT_S)
        assert frames_in(first, SERVER_RECEIVES) == queued
        client.send(JobReceived(job_id="alone"))
        assert await asyncio.wait_for(raw.get(), WAIT_S) == JobReceived(job_id="alone").encode()


async def test_connection_recv_hands_out_a_batch_frame_by_frame(run_server: RunServer) -> None:
    """A batch from the server comes out of recv() one message at a time; its bad frame is
    answered with an error and skipped, as a bad frame alone is."""
    cancels = [JobCancel(job_id=f"job-{n}").encode() for n in range(2)]
    answered: asyncio.Queue[Message] = asyncio.Queue()

    async def send_a_batch(server: HandshakeServer, ws: ServerConnection, index: int) -> None:
        await ws.send(f'[{cancels[0]}, {{"type": "job.bogus"}}, {{"type": "heartbeat"}}, {cancels[1]}]')
        async for frame in ws:
            for message in frames_in(frame, SERVER_RECEIVES):
                await answered.put(message)

    server = await run_server(HandshakeServer(session=send_a_batch))
    connection = await dial(server)
    try:
        assert await asyncio.wait_for(connection.recv(), WAIT_S) == JobCancel(job_id="job-0")
        assert await asyncio.wait_for(connection.recv(), WAIT_S) == JobCancel(job_id="job-1")
        error = await asyncio.wait_for(answered.get(), WAIT_S)
        assert isinstance(error, Error) and error.code == "unknown_type"
    finally:
        await connection.close()


async def test_send_soon_goes_out_with_the_next_send_or_at_the_end_of_the_turn(run_server: RunServer) -> None:
    """send_soon waits for the end of this loop turn: a send() within it carries both in one
    websocket message, in order; alone, it still goes out; close() writes what waits first."""
    raw: asyncio.Queue[str | bytes] = asyncio.Queue()

    async def keep_raw(server: HandshakeServer, ws: ServerConnection, index: int) -> None:
        async for frame in ws:
            await raw.put(frame)

    server = await run_server(HandshakeServer(session=keep_raw))
    connection = await dial(server)
    first, second, third, last = (JobReceived(job_id=f"job-{n}") for n in range(4))
    connection.send_soon(first)
    await connection.send(second)
    assert frames_in(await asyncio.wait_for(raw.get(), WAIT_S), SERVER_RECEIVES) == [first, second]
    connection.send_soon(third)
    assert await asyncio.wait_for(raw.get(), WAIT_S) == third.encode()
    connection.send_soon(last)
    await connection.close()
    assert await asyncio.wait_for(raw.get(), WAIT_S) == last.encode()


async def test_send_soon_on_a_closed_connection_leaves_the_error_to_the_next_send(run_server: RunServer) -> None:
    server = await run_server(HandshakeServer())
    connection = await dial(server)
    await connection.ws.close()
    connection.send_soon(JobReceived(job_id="job-0"))
    await asyncio.sleep(0.05)  # its write fails quietly
    with pytest.raises(ConnectionLost):
        await connection.send(JobReceived(job_id="job-1"))


async def test_reconnecting_client_resends_what_was_not_acknowledged_after_a_reconnect(run_server: RunServer) -> None:
    """A message sent with an ack key goes out again on each new connection until it is acknowledged.

    The server takes three frames on its first connection and dies without acting on them; the
    first one was acknowledged before. On the next connection the two others come again, ahead
    of a message queued meanwhile, each once; then nothing more once acknowledged.
    """
    dropped, acknowledged_one = asyncio.Event(), asyncio.Event()

    async def take_three_then_die(server: HandshakeServer, ws: ServerConnection, index: int) -> None:
        if index == 0:
            taken = 0
            while taken < 3:  # the three may come in fewer websocket messages (batches)
                for message in frames_in(await ws.recv(), SERVER_RECEIVES):
                    await server.inbox.put((index, message))
                    taken += 1
            await acknowledged_one.wait()
            await ws.close(1011, "crashed")
            dropped.set()
            return
        await record_everything(server, ws, index)

    server = await run_server(HandshakeServer(session=take_three_then_die))

    async def ignore(connection: Connection, message: Message) -> None:
        pass

    client = ReconnectingClient(server.url, CLIENT, ROLE, CLIENT_RECEIVES, ignore, server_hotkey=server.hotkey)
    statuses = [JobReceived(job_id=f"status-{n}") for n in range(3)]
    for n, message in enumerate(statuses):
        client.send(message, ack_key=n)
    async with running(client):
        assert [await server.next_received() for _ in range(3)] == [(0, message) for message in statuses]
        client.acknowledge([0])
        acknowledged_one.set()
        await asyncio.wait_for(dropped.wait(), WAIT_S)
        client.send(JobReceived(job_id="plain"))  # no ack key: sent once, after the resent ones
        received = [await server.next_received() for _ in range(3)]
        assert received == [(1, statuses[1]), (1, statuses[2]), (1, JobReceived(job_id="plain"))]
        assert client.unacknowledged == 2
        client.acknowledge([1, 2, 99])  # an unknown key is no error
        assert client.unacknowledged == 0
        with pytest.raises(TimeoutError):
            await server.next_received()


async def test_reconnecting_client_sends_heartbeats_while_idle(run_server: RunServer) -> None:
    """With nothing to send, the client keeps the connection alive with heartbeat frames."""
    server = await run_server(HandshakeServer())

    async def ignore(connection: Connection, message: Message) -> None:
        pass

    client = ReconnectingClient(server.url, CLIENT, ROLE, CLIENT_RECEIVES, ignore, heartbeat_s=0.05)
    async with running(client):
        assert await server.next_received() == (0, Heartbeat())
        assert await server.next_received() == (0, Heartbeat())


async def test_reconnecting_client_keeps_retrying_a_server_that_refuses_it(run_server: RunServer) -> None:
    """A refusal (4403) is not fatal: the loop keeps trying rather than raising."""
    server = await run_server(HandshakeServer(role="miner"))

    async def ignore(connection: Connection, message: Message) -> None:
        pass

    client = ReconnectingClient(server.url, CLIENT, ROLE, CLIENT_RECEIVES, ignore)
    async with running(client) as task:
        await eventually(lambda: server.attempts == 1)
        await asyncio.sleep(0.05)
        assert not task.done()
        assert not client.connected.is_set()


async def test_reconnecting_client_survives_a_server_that_sends_garbage_instead_of_a_challenge(
    start_server: Start,
) -> None:
    """A server speaking another protocol version (or nonsense) is retried later, not fatal to the client."""
    attempts: list[int] = []

    async def garbage(ws: ServerConnection) -> None:
        attempts.append(1)
        await ws.send('{"type": "auth.challenge", "server_hotkey": "not hex", "nonce": "x"}')
        with contextlib.suppress(Exception):
            await ws.recv()

    url = await start_server(garbage)

    async def ignore(connection: Connection, message: Message) -> None:
        pass

    client = ReconnectingClient(url, CLIENT, ROLE, CLIENT_RECEIVES, ignore)
    async with running(client) as task:
        await eventually(lambda: len(attempts) >= 2 or task.done())
        assert not task.done(), f"run_forever ended: {task.exception()!r}"


# FrameHandlers


def test_handler_name_maps_a_type_to_its_frame_method() -> None:
    assert handler_name("job.cancel") == "frame_job_cancel"
    assert handler_name("relay.call") == "frame_relay_call"
    assert handler_name("scores") == "frame_scores"


async def test_frame_handlers_dispatch_by_type_and_answer_what_has_no_handler(run_server: RunServer) -> None:
    """frame_<name> gets its frames; another is answered error{unsupported}; an unhandled error is not echoed."""

    async def send_three(server: HandshakeServer, ws: ServerConnection, index: int) -> None:
        await ws.send(JobCancel(job_id="job-1", reason="x").encode())
        await ws.send(JobStatusAck(statuses=[]).encode())
        await ws.send(Error(code="boom", message="from the server").encode())
        await record_everything(server, ws, index)

    class Handlers(FrameHandlers):
        def __init__(self) -> None:
            self.cancelled: list[str] = []

        async def frame_job_cancel(self, message: JobCancel) -> None:
            self.cancelled.append(message.job_id)

    server = await run_server(HandshakeServer(session=send_three))
    handlers = Handlers()
    client = ReconnectingClient(
        server.url, CLIENT, ROLE, CLIENT_RECEIVES, handlers.handle_frame, server_hotkey=server.hotkey
    )
    async with running(client):
        await eventually(lambda: handlers.cancelled == ["job-1"])
        _, answer = await server.next_received()
        assert isinstance(answer, Error)
        assert (answer.code, answer.message) == ("unsupported", "job.status_ack is not accepted here")
        await asyncio.sleep(0.1)
        assert server.inbox.empty()  # the error frame was logged, not answered
