"""The validator's hop of the relayed messages (protocol/messages/relay.py): calls up from the
miners to the facilitator, replies down to the miner that drives the call's job attempt.

Neither way involves the job driver: a call is passed on when its attempt is one this validator
drives on the miner that sent it (:attr:`MinerConnection.attempt_numbers`), and a reply goes to
the miner driving its attempt now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from protocol.messages import RelayCall, RelayReply
from protocol.transport import ReconnectingClient
from validator.miners import MinerConnection

__all__ = ["Relay"]

log = logging.getLogger("grid.validator.relay")


class Relay:
    def __init__(self, miners: Callable[[], Sequence[MinerConnection]], facilitator: ReconnectingClient) -> None:
        self._miners = miners
        self._facilitator = facilitator

    def up(self, miner: MinerConnection, call: RelayCall) -> None:
        """``call`` came from ``miner``: on to the facilitator, or refused back to the miner."""
        if miner.attempt_numbers.get(call.job_id) != call.attempt:
            log.warning(
                "miner %s relayed %s for job %s attempt %d, which we do not drive there",
                miner.hotkey[:12],
                call.kind,
                call.job_id,
                call.attempt,
            )
            miner.client.send(RelayReply.refuse(call, "unknown_job", "this validator drives no such attempt there"))
            return
        self._facilitator.send(call)

    async def down(self, reply: RelayReply) -> None:
        """A reply from the facilitator: to the miner driving its attempt (none any more: dropped, logged)."""
        for miner in self._miners():
            if miner.attempt_numbers.get(reply.job_id) == reply.attempt:
                miner.client.send(reply)
                return
        log.info(
            "relay.reply %s for job %s attempt %d, no longer driven here", reply.call_id, reply.job_id, reply.attempt
        )
