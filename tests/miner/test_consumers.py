"""The miner's endpoints: validators on ``ws/validator/``, executors on ``ws/executor/`` (miner/consumers.py).

The pool is real, on a stand-in spawner (``FakeSpawner``); executors are played by hand with the
one-time key the pool generated for them, as a spawned executor would use it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import override_settings

from grid.local import free_port
from miner.executors.pool import ExecutorPool, SlotState
from miner.ports import PortPool
from node.identity import own_keypair
from protocol.classes import STANDARD_CLASSES
from protocol.handshake import MAX_HANDSHAKE_FRAME_BYTES, ClientHandshake
from protocol.keys import Keypair
from protocol.messages import (
    MINER_TO_VALIDATOR,
    ClassCapacity,
    Error,
    ExecutionDone,
    ExecutorReady,
    JobAccepted,
    JobCancel,
    JobDeclined,
    JobFailed,
    JobFailure,
    JobFinished,
    JobFull,
    JobInfraFailed,
    JobInitial,
    JobReserved,
    JobResult,
    JobsRunning,
    Manifest,
    Message,
    StreamingEndpoint,
    StreamingReady,
    VolumesReady,
)
from protocol.spec import new_job_id
from protocol.streaming import Readiness, verify_readiness
from tests.ws import Peer

from .conftest import OTHER_VALIDATOR, STRANGER, VALIDATOR, Dial, FakeSpawner, settle

# The miner's consumers use no database, but Channels closes stale connections on disconnect.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("validators_allowed")]

MANIFEST = ("manifest",)


def initial(job_id: str | None = None, executor_class: str = "cpu.small") -> JobInitial:
    return JobInitial(job_id=job_id or new_job_id(), executor_class=executor_class, timing={"execution": 5.0})


def full(job_id: str) -> JobFull:
    return JobFull(job_id=job_id, spec={"command": ["true"]}, client_hotkey="cd" * 32, client_signature="ef" * 64)


async def connected_validator(dial_validator: Dial, keypair: Keypair = VALIDATOR) -> Peer:
    validator = await dial_validator(keypair)
    assert isinstance(await validator.receive(), Manifest)
    assert await validator.receive() == JobsRunning(jobs={})  # nothing held for it
    return validator


async def accepted(validator: Peer, message: JobInitial) -> None:
    await validator.send(message)
    assert await validator.receive(skip=MANIFEST) == JobAccepted(job_id=message.job_id)


async def running_job(dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner) -> tuple[Peer, Peer, str]:
    """A validator with a job reserved on the warm executor, which has connected and got its initial."""
    validator = await connected_validator(dial_validator)
    keypair = await spawner.next_spawned()
    job = initial()
    await accepted(validator, job)
    executor = await dial_executor(keypair)
    assert await executor.receive() == JobReserved(initial=job)
    return validator, executor, job.job_id


# -- validators: handshake and manifest ------------------------------------------------------------


async def test_an_allowed_validator_gets_the_manifest_after_auth(
    dial_validator: Dial, pool: ExecutorPool, spawner: FakeSpawner
) -> None:
    validator = await dial_validator(VALIDATOR)
    assert await validator.receive() == Manifest(
        classes={"cpu.small": ClassCapacity(total=2, free=2, spec=STANDARD_CLASSES["cpu.small"])}
    )
    keypair = await spawner.next_spawned()
    assert pool.slots[keypair.hotkey].state is SlotState.STARTING, "connecting warms the pool"


async def test_a_hotkey_not_allowed_as_validator_is_closed_with_4403(dial_validator: Dial, pool: ExecutorPool) -> None:
    peer = await dial_validator(None)
    assert peer.challenge is not None
    await peer.send(ClientHandshake(STRANGER, "validator").receive_challenge(peer.challenge))
    assert await peer.closed_with() == (4403, f"hotkey {STRANGER.hotkey} is not allowed as validator")
    assert pool.on_change == []


async def test_a_bad_handshake_signature_is_closed_with_4401(dial_validator: Dial) -> None:
    peer = await dial_validator(None)
    assert peer.challenge is not None
    response = ClientHandshake(VALIDATOR, "validator").receive_challenge(peer.challenge)
    await peer.send(response.model_copy(update={"signature": "00" * 64}))
    assert await peer.closed_with() == (4401, "handshake signature refused: signature does not verify")


async def test_a_garbage_first_frame_is_closed_with_4401(dial_validator: Dial) -> None:
    peer = await dial_validator(None)
    await peer.send("\x00garbage")
    code, reason = await peer.closed_with()
    assert code == 4401
    assert reason.startswith("expected auth.response: frame is not JSON")


async def test_bad_frames_get_error_frames_and_the_connection_stays_usable(dial_validator: Dial) -> None:
    validator = await connected_validator(dial_validator)
    expected = [
        ("{", "bad_json", "frame is not JSON"),
        ("null", "bad_json", "frame must be a JSON object with a string 'type'"),
        ('{"type": "job.accepted", "job_id": "j"}', "unknown_type", "unknown message type 'job.accepted'"),
        ('{"type": "job.initial", "job_id": "j"}', "invalid_message", "invalid job.initial message: executor_class"),
        (
            '{"type": "job.initial", "job_id": "j", "executor_class": "cpu.small", "attempt": 0}',
            "invalid_message",
            "invalid job.initial message: attempt: Input should be greater than or equal to 1",
        ),
    ]
    for frame, code, message in expected:
        await validator.send(frame)
        error = await validator.receive(skip=MANIFEST)
        assert isinstance(error, Error), (frame, error)
        assert error.code == code, (frame, error)
        assert error.message.startswith(message), (frame, error)
    await accepted(validator, initial())


# -- validators: reservations ----------------------------------------------------------------------


async def test_job_initial_for_an_unknown_class_is_declined(dial_validator: Dial, pool: ExecutorPool) -> None:
    validator = await connected_validator(dial_validator)
    job = initial(executor_class="gpu.80gb")
    await validator.send(job)
    assert await validator.receive(skip=MANIFEST) == JobDeclined(
        job_id=job.job_id, reason="unknown_executor_class", message="this miner offers cpu.small"
    )
    assert pool.jobs == {}


async def test_job_initial_is_accepted_and_the_new_manifest_follows(dial_validator: Dial, pool: ExecutorPool) -> None:
    validator = await connected_validator(dial_validator)
    job = initial()
    await validator.send(job)
    assert await validator.receive() == JobAccepted(job_id=job.job_id)
    assert await validator.receive() == Manifest(
        classes={"cpu.small": ClassCapacity(total=2, free=1, spec=STANDARD_CLASSES["cpu.small"])}
    )
    slot = pool.jobs[job.job_id]
    assert slot.initial_frame == job.encode()


async def test_job_initial_when_every_executor_is_taken_is_declined_busy(
    dial_validator: Dial, pool: ExecutorPool
) -> None:
    validator = await connected_validator(dial_validator)
    await accepted(validator, initial())
    await accepted(validator, initial())
    job = initial()
    await validator.send(job)
    assert await validator.receive(skip=MANIFEST) == JobDeclined(
        job_id=job.job_id, reason="busy", message="no free executor of this class"
    )
    assert job.job_id not in pool.jobs and len(pool.jobs) == 2


async def test_a_redelivered_job_initial_reserves_nothing_more(dial_validator: Dial, pool: ExecutorPool) -> None:
    validator = await connected_validator(dial_validator)
    job = initial()
    await accepted(validator, job)
    slot = pool.jobs[job.job_id]
    await validator.send(job)
    await validator.expect_nothing(skip=MANIFEST)
    assert pool.jobs == {job.job_id: slot}
    assert pool.manifest()["cpu.small"].free == 1


async def test_job_full_for_an_unknown_job_is_an_unknown_job_error(dial_validator: Dial) -> None:
    validator = await connected_validator(dial_validator)
    job_id = new_job_id()
    await validator.send(full(job_id))
    assert await validator.receive(skip=MANIFEST) == Error(
        code="unknown_job", message="no reservation for this job", ref=job_id
    )


async def test_job_full_for_another_validators_job_is_an_unknown_job_error(dial_validator: Dial) -> None:
    mine = await connected_validator(dial_validator)
    job = initial()
    await accepted(mine, job)
    other = await connected_validator(dial_validator, OTHER_VALIDATOR)
    await other.send(full(job.job_id))
    error = await other.receive(skip=MANIFEST)
    assert isinstance(error, Error) and (error.code, error.ref) == ("unknown_job", job.job_id)


async def test_a_validators_cancel_stops_the_executor_and_frees_the_capacity(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await validator.send(JobCancel(job_id=job_id, reason="client cancelled"))
    assert await executor.receive() == JobCancel(job_id=job_id, reason="client cancelled")
    await settle()
    assert job_id not in pool.jobs
    assert pool.manifest()["cpu.small"] == ClassCapacity(total=2, free=2, spec=STANDARD_CLASSES["cpu.small"])


async def test_a_cancel_before_the_executor_connects_kills_its_process(
    dial_validator: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator = await connected_validator(dial_validator)
    keypair = await spawner.next_spawned()
    job = initial()
    await accepted(validator, job)
    await validator.send(JobCancel(job_id=job.job_id))
    await validator.expect_nothing(skip=MANIFEST)
    assert spawner.processes[keypair.hotkey].returncode == -9
    assert job.job_id not in pool.jobs and keypair.hotkey not in pool.slots


# -- executors -------------------------------------------------------------------------------------


async def test_an_executor_hotkey_the_pool_does_not_expect_is_closed_with_4403(dial_executor: Dial) -> None:
    peer = await dial_executor(None)
    assert peer.challenge is not None
    await peer.send(ClientHandshake(STRANGER, "executor").receive_challenge(peer.challenge))
    assert await peer.closed_with() == (4403, f"hotkey {STRANGER.hotkey} is not allowed as executor")


async def test_an_executor_key_used_twice_is_closed_with_4403(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner
) -> None:
    await connected_validator(dial_validator)
    keypair = await spawner.next_spawned()
    await dial_executor(keypair)
    peer = await dial_executor(None)
    assert peer.challenge is not None
    await peer.send(ClientHandshake(keypair, "executor").receive_challenge(peer.challenge))
    code, _ = await peer.closed_with()
    assert code == 4403


async def test_an_executor_reserved_before_it_connects_gets_its_initial_after_auth(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    _, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    slot = pool.jobs[job_id]
    assert slot.connected and slot.state is SlotState.RESERVED
    await executor.expect_nothing()


async def test_a_warm_connected_executor_gets_the_initial_as_soon_as_it_is_reserved(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator = await connected_validator(dial_validator)
    executor = await dial_executor(await spawner.next_spawned())
    await executor.expect_nothing()
    job = initial()
    await accepted(validator, job)
    assert await executor.receive() == JobReserved(initial=job)
    assert pool.jobs[job.job_id].state is SlotState.RESERVED


async def test_job_full_is_forwarded_to_the_executor(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await validator.send(full(job_id))
    assert await executor.receive() == full(job_id)


async def test_the_executors_reports_are_relayed_to_its_validator(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    reports = [
        ExecutorReady(job_id=job_id),
        VolumesReady(job_id=job_id),
        ExecutionDone(job_id=job_id),
        JobFinished(job_id=job_id, result=JobResult(exit_code=0, stdout="hi\n")),
    ]
    for report in reports:
        await executor.send(report)
        assert await validator.receive(skip=MANIFEST) == report


async def test_reports_reach_only_the_validator_that_reserved_the_job(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    other = await connected_validator(dial_validator, OTHER_VALIDATOR)
    await executor.send(ExecutorReady(job_id=job_id))
    assert await validator.receive(skip=MANIFEST) == ExecutorReady(job_id=job_id)
    await other.expect_nothing(skip=MANIFEST)


async def test_a_report_about_another_job_is_an_unknown_job_error(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner
) -> None:
    validator, executor, _ = await running_job(dial_validator, dial_executor, spawner)
    other_job = new_job_id()
    await executor.send(ExecutorReady(job_id=other_job))
    assert await executor.receive() == Error(code="unknown_job", message="not your job", ref=other_job)
    await validator.expect_nothing(skip=MANIFEST)


async def test_a_report_from_an_idle_executor_is_an_unknown_job_error(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner
) -> None:
    await connected_validator(dial_validator)
    executor = await dial_executor(await spawner.next_spawned())
    job_id = new_job_id()
    await executor.send(ExecutorReady(job_id=job_id))
    assert await executor.receive() == Error(code="unknown_job", message="not your job", ref=job_id)


async def test_an_executor_disconnecting_mid_job_is_reported_as_infra_failed(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await executor.send(ExecutorReady(job_id=job_id))
    await validator.receive(skip=MANIFEST)
    await executor.disconnect(code=1006)
    report = await validator.receive(skip=MANIFEST)
    assert report == JobInfraFailed(
        job_id=job_id,
        failure=JobFailure(
            reason="executor_disconnected",
            message="executor disconnected mid-job (close code 1006)",
            reported_by="miner",
        ),
    )
    assert job_id not in pool.jobs
    assert pool.manifest()["cpu.small"] == ClassCapacity(total=2, free=2, spec=STANDARD_CLASSES["cpu.small"])


@pytest.mark.parametrize(
    "last",
    [
        lambda job_id: JobFinished(job_id=job_id, result=JobResult(exit_code=0)),
        lambda job_id: JobFailed(job_id=job_id, failure=JobFailure(reason="nonzero_exit", message="exit 1")),
    ],
    ids=["finished", "failed"],
)
async def test_an_executor_leaving_after_its_job_ended_is_not_a_failure(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool, last: Callable[[str], Message]
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await executor.send(last(job_id))
    assert await validator.receive(skip=MANIFEST) == last(job_id)
    await executor.disconnect()
    await validator.expect_nothing(skip=MANIFEST)
    assert job_id not in pool.jobs


async def test_an_idle_executor_leaving_is_replaced(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator = await connected_validator(dial_validator)
    first = await spawner.next_spawned()
    executor = await dial_executor(first)
    await executor.disconnect()
    second = await spawner.next_spawned()
    assert first.hotkey not in pool.slots and second.hotkey in pool.slots
    await validator.expect_nothing(skip=MANIFEST)


@override_settings(MINER_RESUME_GRACE_S=0)
async def test_without_a_resume_grace_a_validator_leaving_cancels_its_jobs_on_their_executors(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, executor, job_id = await running_job(dial_validator, dial_executor, spawner)
    await validator.disconnect()
    assert await executor.receive() == JobCancel(job_id=job_id, reason="validator disconnected")
    assert job_id not in pool.jobs
    assert pool.on_change == []
    # Whatever the executor still reports goes nowhere, and its leaving is no failure.
    await executor.send(JobFailed(job_id=job_id, failure=JobFailure(reason="cancelled", message="bye")))
    await executor.disconnect()
    await settle()


async def test_the_heartbeat_is_accepted_silently_on_both_endpoints(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner
) -> None:
    validator, executor, _ = await running_job(dial_validator, dial_executor, spawner)
    await validator.send('{"type": "heartbeat"}')
    await executor.send('{"type": "heartbeat"}')
    await validator.expect_nothing(skip=MANIFEST)
    await executor.expect_nothing()


# -- streaming jobs: gateway ports and the miner's signed readiness ------------------------------


def streaming_initial() -> JobInitial:
    return initial().model_copy(update={"streaming": True})


async def test_a_streaming_job_gets_a_gateway_port_and_gives_it_back(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    port = free_port()  # the pool hands out only a port it can bind: not a fixed one another test may hold
    pool.ports = PortPool(range(port, port + 1))
    validator = await connected_validator(dial_validator)
    keypair = await spawner.next_spawned()
    job = streaming_initial()
    await accepted(validator, job)
    executor = await dial_executor(keypair)
    # The port is the miner's own: it goes to the executor beside the validator's job.initial, not in it.
    assert await executor.receive() == JobReserved(initial=job, gateway_port=port)

    second = streaming_initial()
    await validator.send(second)
    assert await validator.receive(skip=MANIFEST) == JobDeclined(
        job_id=second.job_id, reason="no_streaming_port", message="every streaming port of this miner is taken"
    )
    assert second.job_id not in pool.jobs

    await validator.send(JobCancel(job_id=job.job_id))
    assert await executor.receive() == JobCancel(job_id=job.job_id)  # the miner has handled it
    await settle()
    assert pool.ports.free == 1, "the cancelled job's port is free again"


async def test_a_busy_miner_does_not_keep_the_port_of_a_job_it_declined(
    dial_validator: Dial, pool: ExecutorPool
) -> None:
    pool.ports = PortPool(range(40000, 40010))
    validator = await connected_validator(dial_validator)
    await accepted(validator, initial())
    await accepted(validator, initial())
    job = streaming_initial()
    await validator.send(job)
    assert (await validator.receive(skip=MANIFEST)).reason == "busy"
    assert pool.ports.free == 10


async def streaming_job(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> tuple[Peer, Peer, str]:
    """A streaming job under way, its executor given the pool's one port (``pool.ports.ports[0]``)."""
    port = free_port()
    pool.ports = PortPool(range(port, port + 1))
    validator = await connected_validator(dial_validator)
    keypair = await spawner.next_spawned()
    job = streaming_initial()
    await accepted(validator, job)
    executor = await dial_executor(keypair)
    await executor.receive()
    return validator, executor, job.job_id


def readiness(job: str, port: int, **changes: object) -> StreamingReady:
    ready = Readiness(job_id=job, address="127.0.0.1", port=port, job_public_key="ab" * 32, cert_fingerprint="cd" * 32)
    endpoint = StreamingEndpoint(readiness=ready.model_copy(update=changes), cert_pem="PEM")
    return StreamingReady(job_id=job, endpoint=endpoint)


async def test_the_miner_signs_the_readiness_it_relays(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool
) -> None:
    validator, executor, job_id = await streaming_job(dial_validator, dial_executor, spawner, pool)
    port = pool.ports.ports[0]
    await executor.send(readiness(job_id, port))
    relayed = await validator.receive(skip=MANIFEST)
    assert isinstance(relayed, StreamingReady)
    endpoint = relayed.endpoint
    assert endpoint.miner_hotkey == own_keypair().hotkey
    verify_readiness(endpoint.miner_hotkey, endpoint.readiness, endpoint.miner_signature)
    assert endpoint.readiness == readiness(job_id, port).endpoint.readiness and endpoint.cert_pem == "PEM"


@pytest.mark.parametrize("changes", [{"port": "another"}, {"address": "10.1.2.3"}, {"job_id": "someone-else"}])
async def test_the_miner_refuses_to_vouch_for_a_readiness_it_did_not_assign(
    dial_validator: Dial, dial_executor: Dial, spawner: FakeSpawner, pool: ExecutorPool, changes: dict
) -> None:
    validator, executor, job_id = await streaming_job(dial_validator, dial_executor, spawner, pool)
    port = pool.ports.ports[0]
    if changes.get("port") == "another":
        port, changes = port + 1, {}
    await executor.send(readiness(job_id, port, **changes))
    error = await executor.receive()
    assert isinstance(error, Error) and error.code == "bad_readiness"
    await executor.send(ExecutionDone(job_id=job_id))
    assert await validator.receive(skip=MANIFEST) == ExecutionDone(job_id=job_id), "nothing else was relayed"


@pytest.mark.parametrize("path", ["/ws/validator/", "/ws/executor/"])
async def test_a_frame_over_64_kib_before_the_handshake_is_closed_with_1009(dial: Dial, path: str) -> None:
    """The consumer base caps what a peer may send before proving its key, on the miner's endpoints too."""
    peer = await dial(path, None, "validator", MINER_TO_VALIDATOR)
    await peer.send("x" * (MAX_HANDSHAKE_FRAME_BYTES + 1))
    assert await peer.closed_with() == (1009, "frame exceeds the handshake's limit of 65536 bytes")
