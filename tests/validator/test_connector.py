"""The validator's connector (validator/connector.py) and its jobs' rows (validator/jobs.py):
intake, persistence and supervision, over real websockets on loopback.

The connector is the real one, with its real ledger and database; so are its websocket clients.
Its peers are loopback websocket servers that speak the protocol's server side (the real
handshake, then frames of the real unions): the facilitator records what the validator sends and
lets a test send frames or drop the connection; the miner runs each job through its stages at
once (or holds it, to leave it unfinished). What those peers do with jobs is the facilitator's and
the miner's own tests' business, and the integration tests'.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from protocol.errors import FrameError, HandshakeError
from protocol.handshake import ServerHandshake
from protocol.keys import Keypair
from protocol.messages import (
    AUTH_FROM_CLIENT,
    VALIDATOR_TO_FACILITATOR,
    VALIDATOR_TO_MINER,
    Capacity,
    ClassCapacity,
    Error,
    ExecutionDone,
    ExecutorReady,
    Heartbeat,
    JobAccepted,
    JobCancel,
    JobContext,
    JobFinished,
    JobFull,
    JobInitial,
    JobNew,
    JobReceived,
    JobResult,
    JobStatusAck,
    JobStatusUpdate,
    Manifest,
    Message,
    StatusKey,
    StoreLink,
    StoreLinks,
    VolumesReady,
    parse_frame,
)
from protocol.spec import JobSpec, new_job_id, sign_job
from protocol.status import JobStatus
from tests.ws import WAIT_S, frames_in
from validator.connector import Connector
from validator.models import ValidatorJob

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT = Keypair.generate()
VALIDATOR = Keypair.generate()
RESULT = JobResult(exit_code=0, stdout="ok\n")
DRIVEN = ["accepted", "executor_ready", "volumes_ready", "execution_done", "completed"]


class Peer:
    """A loopback websocket server with the protocol's server handshake for ``role``."""

    role = "validator"  # the role its clients claim: the validator dials both the facilitator and miners

    def __init__(self, keypair: Keypair | None = None) -> None:
        self.keypair = keypair or Keypair.generate()
        self.connections: list[ServerConnection] = []
        self.connected = asyncio.Condition()
        self.url = ""

    @property
    def hotkey(self) -> str:
        return self.keypair.hotkey

    async def handler(self, ws: ServerConnection) -> None:
        handshake = ServerHandshake(self.keypair, self.role)
        await ws.send(handshake.challenge().encode())
        try:
            handshake.verify(parse_frame(await ws.recv(), AUTH_FROM_CLIENT))
        except (ConnectionClosed, FrameError, HandshakeError):
            await ws.close(4401, "handshake failed")
            return
        await ws.send(handshake.accept().encode())
        async with self.connected:
            self.connections.append(ws)
            self.connected.notify_all()
        with contextlib.suppress(ConnectionClosed):
            await self.session(ws, len(self.connections) - 1)

    async def session(self, ws: ServerConnection, index: int) -> None:
        raise NotImplementedError

    async def wait_connections(self, count: int) -> None:
        """Until the validator has connected ``count`` times (reconnects included)."""
        async with asyncio.timeout(WAIT_S * 3), self.connected:
            await self.connected.wait_for(lambda: len(self.connections) >= count)


class Facilitator(Peer):
    """Records every frame the validator sends, with the index of the connection it came on."""

    def __init__(self) -> None:
        super().__init__()
        self.inbox: asyncio.Queue[tuple[int, Message]] = asyncio.Queue()
        self.capacities: asyncio.Queue[tuple[int, Capacity]] = asyncio.Queue()  # kept apart: they come any time

    async def session(self, ws: ServerConnection, index: int) -> None:
        async for frame in ws:
            for message in frames_in(frame, VALIDATOR_TO_FACILITATOR):
                if isinstance(message, Capacity):
                    await self.capacities.put((index, message))
                elif not isinstance(message, Heartbeat):
                    await self.inbox.put((index, message))

    async def send(self, frame: Message | str) -> None:
        """To the validator, on the newest connection."""
        await self.connections[-1].send(frame.encode() if isinstance(frame, Message) else frame)

    async def drop(self) -> None:
        """Close the newest connection as a facilitator going away would."""
        await self.connections[-1].close(1001, "going away")

    async def next(self) -> tuple[int, Message]:
        return await asyncio.wait_for(self.inbox.get(), WAIT_S)

    async def statuses(self, job_id: str, until: str) -> list[JobStatusUpdate]:
        """The job's statuses as they come, up to and including the first ``until``."""
        seen: list[JobStatusUpdate] = []
        while not seen or seen[-1].status.value != until:
            _, message = await self.next()
            if isinstance(message, JobStatusUpdate) and message.job_id == job_id:
                seen.append(message)
        return seen

    async def nothing_more(self, quiet_s: float = 0.3) -> None:
        await asyncio.sleep(quiet_s)
        assert self.inbox.empty(), self.inbox.get_nowait()


class Miner(Peer):
    """Offers four cpu.small executors and runs each job straight through its stages; with
    ``hold``, accepts a job and then keeps it running (no end comes)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.initials: list[JobInitial] = []
        self.fulls: list[JobFull] = []

    async def session(self, ws: ServerConnection, index: int) -> None:
        async def send(*messages: Message) -> None:
            for message in messages:
                await ws.send(message.encode())

        manifest = Manifest(classes={"cpu.small": ClassCapacity(total=4, free=4)})
        await send(manifest)
        async for frame in ws:
            for message in frames_in(frame, VALIDATOR_TO_MINER):
                await self._answer(message, send, manifest)

    async def _answer(self, message: Message, send: Callable[..., Awaitable[None]], manifest: Manifest) -> None:
        if isinstance(message, JobInitial):
            self.initials.append(message)
            await send(JobAccepted(job_id=message.job_id), ExecutorReady(job_id=message.job_id))
        elif isinstance(message, JobFull):
            self.fulls.append(message)
            if not self.hold:
                job_id = message.job_id
                ended = JobFinished(job_id=job_id, result=RESULT)
                await send(VolumesReady(job_id=job_id), ExecutionDone(job_id=job_id), ended, manifest)


Serve = Callable[[Peer], Awaitable[Peer]]


@pytest.fixture
async def run_peer() -> AsyncIterator[Serve]:
    servers: list[Server] = []

    async def start(peer: Peer) -> Peer:
        server = await serve(peer.handler, "127.0.0.1", 0, close_timeout=0.5)
        servers.append(server)
        host, port = server.sockets[0].getsockname()[:2]
        peer.url = f"ws://{host}:{port}/"
        return peer

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


class Running:
    """Connectors started by a test, each ``run()`` as a task; stopped like a process that ends."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, facilitator: Facilitator, *miners: Miner, queue_timeout: float = 0.5) -> Connector:
        connector = Connector(
            VALIDATOR,
            facilitator.url,
            facilitator.hotkey,
            [f"{miner.hotkey}@{miner.url}" for miner in miners],
            queue_timeout,
            status_path=str(self.tmp_path / "status.json"),
        )
        # Through its start (ends resent, unfinished jobs resumed) before a test sends it jobs: a
        # job.new taken before _recover reads the unfinished rows is "resumed" too (a known race).
        recovered, recover = asyncio.Event(), connector._recover

        async def _recover() -> None:
            await recover()
            recovered.set()

        connector._recover = _recover  # type: ignore[method-assign]
        self.tasks.append(asyncio.create_task(connector.run(), name="connector"))
        await facilitator.wait_connections(len(facilitator.connections) + 1)
        await asyncio.wait_for(recovered.wait(), WAIT_S * 3)
        dialled = {connection.hotkey: connection for connection in connector.miners}
        for miner in miners:
            await asyncio.wait_for(dialled[miner.hotkey].client.connected.wait(), WAIT_S)
        return connector

    async def stop(self) -> None:
        """Cancel the newest connector's run, as a validator process killed mid-job."""
        task = self.tasks.pop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)  # its clients' tasks were cancelled too: let them hang up

    async def stop_all(self) -> None:
        while self.tasks:
            await self.stop()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    running = Running(tmp_path)
    yield running
    await running.stop_all()


def job_new(**spec: Any) -> JobNew:
    raw = JobSpec(command=["true"], timing={"reservation": 2, "executor_start": 2}, **spec).to_wire()
    job_id = new_job_id()
    return JobNew(job_id=job_id, spec=raw, client_hotkey=CLIENT.hotkey, client_signature=sign_job(CLIENT, job_id, raw))


async def row(job_id: str, **wanted: Any) -> ValidatorJob:
    """The job's row once its fields are ``wanted`` (the connector writes after it reports)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            record = await ValidatorJob.objects.filter(job_id=job_id).afirst()
            if record is not None and all(getattr(record, name) == value for name, value in wanted.items()):
                return record
            await asyncio.sleep(0.02)


def ack(*updates: JobStatusUpdate) -> JobStatusAck:
    return JobStatusAck(statuses=[StatusKey.of(update) for update in updates])


# -- intake ----------------------------------------------------------------------------------------


async def test_a_job_is_verified_stored_acknowledged_and_driven_to_its_end(run_peer: Serve, running: Running) -> None:
    facilitator, miner = await run_peer(Facilitator()), await run_peer(Miner())
    await running.start(facilitator, miner)
    new = job_new()
    link = StoreLink(key="jobs/out.txt", url="http://store.test/jobs/out.txt?sig=x")
    new = new.model_copy(update={"context": JobContext(links=StoreLinks(outputs={"out.txt": link}))})
    await facilitator.send(new)
    statuses = await facilitator.statuses(new.job_id, until="completed")  # its first status says it arrived
    assert [update.status.value for update in statuses] == ["received", *DRIVEN]
    final = statuses[-1]
    assert (final.attempt, final.miner, final.result) == (1, miner.hotkey, RESULT)
    [initial] = miner.initials
    assert (initial.job_id, initial.attempt, initial.image) == (new.job_id, 1, JobSpec.model_validate(new.spec).image)
    [full] = miner.fulls
    assert (full.spec, full.client_signature, full.context) == (new.spec, new.client_signature, new.context)
    record = await row(new.job_id, status=JobStatus.COMPLETED)
    assert record.spec == new.spec and record.client_signature == new.client_signature
    assert record.links == new.context.links.model_dump(mode="json")
    assert (record.attempt, record.miner_hotkey, record.executor_class) == (1, miner.hotkey, "cpu.small")
    assert JobStatusUpdate.model_validate(record.final) == final and not record.final_acked


async def test_the_facilitator_hears_what_the_miners_offer_on_connect_and_again_after_a_reconnect(
    run_peer: Serve, running: Running
) -> None:
    facilitator, miner = await run_peer(Facilitator()), await run_peer(Miner())
    await running.start(facilitator, miner)

    async def offer_on(connection: int) -> dict:
        while True:
            index, capacity = await asyncio.wait_for(facilitator.capacities.get(), WAIT_S)
            if index == connection and capacity.classes:
                return {name: c.total for name, c in capacity.classes.items()}

    assert await offer_on(0) == {"cpu.small": 4}
    await facilitator.drop()
    await facilitator.wait_connections(2)
    assert await offer_on(1) == {"cpu.small": 4}  # told again: a new connection may be a new facilitator


async def test_a_redelivered_job_is_acknowledged_again_and_taken_once(run_peer: Serve, running: Running) -> None:
    facilitator, miner = await run_peer(Facilitator()), await run_peer(Miner())
    miner.hold = True  # still running when it is delivered again
    await running.start(facilitator, miner)
    new = job_new()
    await facilitator.send(new)
    await facilitator.statuses(new.job_id, until="executor_ready")
    await facilitator.send(new)  # no status follows a redelivery: job.received says it is here
    assert await facilitator.next() == (0, JobReceived(job_id=new.job_id))
    await facilitator.nothing_more()
    assert len(miner.initials) == 1


async def test_a_job_taken_before_is_acknowledged_and_not_run_again(run_peer: Serve, running: Running) -> None:
    """A redelivery after the job ended (no driver holds it now): the stored row answers."""
    facilitator = await run_peer(Facilitator())
    await running.start(facilitator)
    new = job_new()
    await facilitator.send(new)
    rejected = (await facilitator.statuses(new.job_id, until="rejected"))[-1]
    assert rejected.failure.reason == "no_miner"
    await row(new.job_id, status=JobStatus.REJECTED)
    await facilitator.send(new)
    assert await facilitator.next() == (0, JobReceived(job_id=new.job_id))
    await facilitator.nothing_more()
    assert await ValidatorJob.objects.filter(job_id=new.job_id).acount() == 1


async def test_a_job_the_client_did_not_sign_or_with_a_bad_spec_is_stored_failed_and_not_driven(
    run_peer: Serve, running: Running
) -> None:
    facilitator, miner = await run_peer(Facilitator()), await run_peer(Miner())
    await running.start(facilitator, miner)
    forged = job_new().model_copy(update={"client_signature": sign_job(Keypair.generate(), new_job_id(), {})})
    raw = {"command": [], "image": 3}
    bad_spec = JobNew(
        job_id=(job_id := new_job_id()), spec=raw, client_hotkey=CLIENT.hotkey,
        client_signature=sign_job(CLIENT, job_id, raw),
    )  # fmt: skip
    for new, reason in ((forged, "bad_signature"), (bad_spec, "invalid_spec")):
        await facilitator.send(new)
        [failed] = await facilitator.statuses(new.job_id, until="failed")
        assert (failed.failure.reason, failed.failure.reported_by) == (reason, "validator")
        record = await row(new.job_id)
        assert record.status == JobStatus.FAILED and record.failure["reason"] == reason
        assert JobStatusUpdate.model_validate(record.final) == failed
    assert miner.initials == []


async def test_bad_frames_are_answered_with_errors_and_lose_nothing(run_peer: Serve, running: Running) -> None:
    facilitator, miner = await run_peer(Facilitator()), await run_peer(Miner())
    await running.start(facilitator, miner)
    first = job_new()
    await facilitator.send(first)
    bad = [
        ("not json", "bad_json"),
        ('{"type": "job.nonsense"}', "unknown_type"),
        ('{"type": "job.received", "job_id": "x"}', "unknown_type"),  # the other direction's
        ('{"type": "job.new", "job_id": "x"}', "invalid_message"),
    ]
    for frame, _ in bad:
        await facilitator.send(frame)
    second = job_new()
    await facilitator.send(second)
    seen = [await facilitator.next() for _ in range(len(bad) + 2 * (1 + len(DRIVEN)))]
    assert {index for index, _ in seen} == {0}, "the same connection throughout"
    messages = [message for _, message in seen]
    errors = [message for message in messages if isinstance(message, Error)]
    assert [error.code for error in errors] == [code for _, code in bad]
    assert not any(isinstance(message, JobReceived) for message in messages)  # their statuses say it
    for new in (first, second):
        got = [m.status.value for m in messages if isinstance(m, JobStatusUpdate) and m.job_id == new.job_id]
        assert got == ["received", *DRIVEN]
    await facilitator.nothing_more()


# -- persistence -----------------------------------------------------------------------------------


async def test_an_acknowledged_end_is_kept_as_sent_and_nothing_else_counts_as_the_end(
    run_peer: Serve, running: Running
) -> None:
    facilitator, miner = await run_peer(Facilitator()), await run_peer(Miner())
    await running.start(facilitator, miner)
    new = job_new()
    await facilitator.send(new)
    statuses = await facilitator.statuses(new.job_id, until="completed")
    await row(new.job_id, status=JobStatus.COMPLETED)
    # An infra_failed of the same attempt is terminal too, but not how this job ended.
    retried = statuses[-1].model_copy(update={"status": JobStatus.INFRA_FAILED})
    await facilitator.send(ack(*statuses[:-1], retried))
    miner.hold = True  # a running job's acknowledged statuses, its current one included, are no end
    running_job = job_new()
    await facilitator.send(running_job)
    so_far = await facilitator.statuses(running_job.job_id, until="executor_ready")
    await row(running_job.job_id, status=JobStatus.EXECUTOR_READY)
    await facilitator.send(ack(*so_far))
    await asyncio.sleep(0.2)
    assert not (await row(new.job_id)).final_acked
    assert not (await row(running_job.job_id)).final_acked
    await facilitator.send(ack(statuses[-1]))
    await row(new.job_id, final_acked=True)


async def test_a_cancelled_job_is_stopped_and_stored_cancelled_with_nothing_to_resend(
    run_peer: Serve, running: Running
) -> None:
    facilitator, miner = await run_peer(Facilitator()), await run_peer(Miner())
    miner.hold = True
    await running.start(facilitator, miner)
    new = job_new()
    await facilitator.send(new)
    await facilitator.statuses(new.job_id, until="executor_ready")
    await facilitator.send(JobCancel(job_id=new.job_id, reason="the client cancelled"))
    record = await row(new.job_id, status=JobStatus.CANCELLED)
    assert record.final_acked and record.final is None
    await facilitator.nothing_more()


# -- supervision -----------------------------------------------------------------------------------


async def test_after_the_facilitator_drops_the_connector_reconnects_and_resends_what_was_not_acknowledged(
    run_peer: Serve, running: Running
) -> None:
    facilitator, miner = await run_peer(Facilitator()), await run_peer(Miner())
    connector = await running.start(facilitator, miner)
    new = job_new()
    await facilitator.send(new)
    statuses = await facilitator.statuses(new.job_id, until="completed")
    await facilitator.send(ack(*statuses[:2]))  # received, accepted: the rest is lost with the connection
    await asyncio.sleep(0.1)
    await facilitator.drop()
    await facilitator.wait_connections(2)
    again = [await facilitator.next() for _ in range(len(statuses) - 2)]
    assert again == [(1, update) for update in statuses[2:]]
    await facilitator.nothing_more()
    # A job given on the new connection is taken as before.
    second = job_new()
    await facilitator.send(second)
    await facilitator.statuses(second.job_id, until="completed")
    assert connector.facilitator.connected.is_set()


async def test_a_restarted_validator_resends_unacknowledged_ends_and_resumes_unfinished_jobs(
    run_peer: Serve, running: Running
) -> None:
    facilitator, miner = await run_peer(Facilitator()), await run_peer(Miner())
    await running.start(facilitator, miner)
    done = job_new()
    await facilitator.send(done)
    completed = (await facilitator.statuses(done.job_id, until="completed"))[-1]
    await row(done.job_id, status=JobStatus.COMPLETED)
    miner.hold = True
    unfinished, last_try = job_new(), job_new(max_attempts=1)
    for new in (unfinished, last_try):
        await facilitator.send(new)
        await facilitator.statuses(new.job_id, until="executor_ready")
        await row(new.job_id, status=JobStatus.EXECUTOR_READY)
        miner.initials.clear()
    await running.stop()
    assert facilitator.inbox.empty()

    miner.hold = False
    await running.start(facilitator, miner)
    by_job: dict[str, list[JobStatusUpdate]] = {}
    async with asyncio.timeout(WAIT_S * 2):
        while (
            len(by_job.get(unfinished.job_id, [])) < 1 + len(DRIVEN)
            or not by_job.get(done.job_id)
            or (not by_job.get(last_try.job_id))
        ):
            index, message = await facilitator.next()
            assert index == 1 and isinstance(message, JobStatusUpdate)
            by_job.setdefault(message.job_id, []).append(message)
    assert by_job[done.job_id] == [completed]
    restarted, *resumed = by_job[unfinished.job_id]
    assert (restarted.status, restarted.attempt, restarted.failure.reason) == (
        JobStatus.INFRA_FAILED,
        1,
        "validator_restarted",
    )
    assert restarted.detail == {"retrying": True}
    assert [(update.status.value, update.attempt) for update in resumed] == [(status, 2) for status in DRIVEN]
    assert [(initial.job_id, initial.attempt) for initial in miner.initials] == [(unfinished.job_id, 2)]
    [ended] = by_job[last_try.job_id]
    assert (ended.status, ended.attempt, ended.detail) == (JobStatus.INFRA_FAILED, 1, {})
    assert (await row(unfinished.job_id, status=JobStatus.COMPLETED)).attempt == 2
    record = await row(last_try.job_id, status=JobStatus.INFRA_FAILED)
    assert JobStatusUpdate.model_validate(record.final) == ended
