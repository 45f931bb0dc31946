"""The validator's hop of the relayed messages (validator/relay.py, validator/miners.py): a miner's
call goes to the facilitator when its attempt is one this validator drives there; a reply goes to
the miner that drives its attempt. The driver is not involved.

The MinerConnection and ReconnectingClient objects are real; only their websockets are absent
(as in test_miner_offers.py): what each would send waits in its outbox.
"""

from __future__ import annotations

from protocol.keys import Keypair
from protocol.messages import FACILITATOR_TO_VALIDATOR, Message, RelayCall, RelayReply
from protocol.spec import new_job_id
from protocol.transport import ReconnectingClient
from validator.miners import MinerConnection
from validator.relay import Relay

VALIDATOR = Keypair.generate()


def outbox(client: ReconnectingClient) -> list[Message]:
    sent = []
    while not client._outbox.empty():
        sent.append(client._outbox.get_nowait())
    return sent


def setup() -> tuple[Relay, ReconnectingClient, list[MinerConnection]]:
    async def ignore(connection: object, message: Message) -> None:
        pass

    facilitator = ReconnectingClient("ws://127.0.0.1:9/", VALIDATOR, "validator", FACILITATOR_TO_VALIDATOR, ignore)
    miners = [MinerConnection(Keypair.generate().hotkey, "ws://127.0.0.1:9/", VALIDATOR) for _ in range(2)]
    relay = Relay(lambda: miners, facilitator)
    for miner in miners:
        miner.on_relay = relay.up
    return relay, facilitator, miners


def call(job_id: str, attempt: int = 1) -> RelayCall:
    return RelayCall(job_id=job_id, attempt=attempt, call_id="c-1", kind="ping")


async def test_a_call_for_an_attempt_driven_on_that_miner_goes_to_the_facilitator() -> None:
    _, facilitator, (miner, _) = setup()
    job_id = new_job_id()
    miner.open_inbox(job_id, "cpu.small", attempt=2)
    await miner.handle_frame(None, call(job_id, attempt=2))  # type: ignore[arg-type]
    assert outbox(facilitator) == [call(job_id, attempt=2)]
    assert outbox(miner.client) == []
    assert miner.inboxes[job_id].empty()  # the driver sees nothing of it


async def test_a_call_for_an_attempt_not_driven_on_that_miner_is_refused_back_to_it() -> None:
    _, facilitator, (miner, other) = setup()
    job_id = new_job_id()
    other.open_inbox(job_id, "cpu.small", attempt=1)
    miner.open_inbox(new_job_id(), "cpu.small", attempt=1)
    for forged in (call(job_id), call(new_job_id())):  # another miner's job, a job nobody drives
        await miner.handle_frame(None, forged)  # type: ignore[arg-type]
        assert outbox(miner.client) == [
            RelayReply.refuse(forged, "unknown_job", "this validator drives no such attempt there")
        ]
    other.open_inbox(job_id, "cpu.small", attempt=2)
    await other.handle_frame(None, call(job_id, attempt=1))  # type: ignore[arg-type]  # an earlier attempt
    assert len(outbox(other.client)) == 1
    assert outbox(facilitator) == []


async def test_a_reply_goes_to_the_miner_driving_its_attempt() -> None:
    relay, _, (first, second) = setup()
    job_id = new_job_id()
    second.open_inbox(job_id, "cpu.small", attempt=3)
    answer = RelayReply(job_id=job_id, attempt=3, call_id="c-1", ok=True, body={"x": 1})
    await relay.down(answer)
    assert (outbox(first.client), outbox(second.client)) == ([], [answer])
    await relay.down(answer.model_copy(update={"attempt": 2}))  # an attempt no longer driven: dropped
    assert (outbox(first.client), outbox(second.client)) == ([], [])
