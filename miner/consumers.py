"""The miner's websocket endpoints: validators (``/ws/validator/``) and executors (``/ws/executor/``).

The two consumers never call each other: frames travel between them over the channel layer
(``validator.forward`` / ``executor.forward`` events), addressed by the channel names the pool
keeps on each reservation.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from miner import receipts
from miner.executors.pool import ExecutorSlot
from miner.registry import admits_validator
from miner.relay import get_holds, get_pool, relay_to_validator, send_event, stop_job, to_executor
from miner.status import miner_status
from node.consumers import AuthenticatedConsumer
from node.identity import own_keypair
from protocol.errors import SignatureError
from protocol.messages import (
    EXECUTOR_TO_MINER,
    VALIDATOR_TO_MINER,
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
    JobsRunning,
    Manifest,
    ReceiptSign,
    ReceiptSigned,
    RelayCall,
    RelayReply,
    StreamingReady,
    VolumesReady,
)
from protocol.receipts import Receipt, ReceiptKind, ReceiptPayload, countersign
from protocol.status import InfraFailureReason, RejectReason
from protocol.streaming import sign_readiness

__all__ = ["ExecutorConsumer", "ValidatorConsumer"]

log = logging.getLogger("grid.miner")

# A manifest that only says executors were taken or freed waits this long for the next change,
# while every class has at least MANIFEST_SPARE free.
MANIFEST_COALESCE_S = 0.02
MANIFEST_SPARE = 3


class ValidatorConsumer(AuthenticatedConsumer):
    role = "validator"
    inbound = VALIDATOR_TO_MINER
    _manifest_pending = False

    async def is_allowed(self, hotkey: str) -> bool:
        return admits_validator(hotkey)  # the static list, or the registry held in memory: no I/O

    async def authenticated(self) -> None:
        miner_status().validator_connected(self.channel_name, str(self.peer_hotkey))
        pool = get_pool()
        pool.on_change.append(self._manifest_changed)
        pool.ensure_warm()
        # Jobs held since this validator's connection dropped are its again: announce them and
        # replay what they reported, so that its drivers pick them up where they were.
        resumed = get_holds().claim(str(self.peer_hotkey))
        for slot in resumed:
            slot.validator_channel = self.channel_name
        await self.send_message(Manifest(classes=pool.manifest()))
        await self.send_message(
            JobsRunning(jobs={str(slot.job_id): receipts.reserved_attempt(slot) or 1 for slot in resumed})
        )
        for slot in resumed:
            log.info("validator back: resuming job %s (%d frames replayed)", slot.job_id, len(slot.reported))
            for frame in list(slot.reported):
                await self.send(text_data=frame)

    def _manifest_changed(self) -> None:
        # Coalesce a burst of changes into one frame; while every class has executors to spare,
        # for MANIFEST_COALESCE_S (a busy miner's free counts move twice a job, and a validator
        # counts its own reservations anyway). When one runs short, at once: it may be full.
        if not self._manifest_pending:
            self._manifest_pending = True
            spare = all(capacity.free >= MANIFEST_SPARE for capacity in get_pool().manifest().values())
            asyncio.get_running_loop().call_later(
                MANIFEST_COALESCE_S if spare else 0.0, lambda: asyncio.ensure_future(self._send_manifest())
            )

    async def _send_manifest(self) -> None:
        self._manifest_pending = False
        await self.send_message(Manifest(classes=get_pool().manifest()))

    async def frame_job_initial(self, message: JobInitial) -> None:
        pool = get_pool()
        if message.executor_class not in pool.classes:
            await self.send_message(
                JobDeclined(
                    job_id=message.job_id,
                    reason=RejectReason.UNKNOWN_EXECUTOR_CLASS,
                    message=f"this miner offers {', '.join(sorted(pool.classes))}",
                )
            )
            return
        held = pool.jobs.get(message.job_id)
        if held is not None:
            if held.validator_hotkey != self.peer_hotkey or receipts.reserved_attempt(held) == message.attempt:
                return  # a redelivered initial: already reserved
            # A later attempt of a job whose earlier one is still here (its validator restarted
            # and tries again): the earlier one is over.
            get_holds().release(message.job_id)
            await stop_job(held, f"superseded by attempt {message.attempt}")
        port = None
        if message.streaming:
            port = pool.ports.take() if pool.ports is not None else None
            if port is None:
                await self.send_message(
                    JobDeclined(
                        job_id=message.job_id,
                        reason=RejectReason.NO_STREAMING_PORT,
                        message="every streaming port of this miner is taken",
                    )
                )
                return
        slot = pool.reserve(message.job_id, message.executor_class, self.channel_name, message.encode())
        if slot is None:
            if pool.ports is not None:
                pool.ports.give_back(port)
            # Back the claim with the receipts of the jobs holding every executor of the class.
            await self.send_message(
                JobDeclined(
                    job_id=message.job_id,
                    reason=RejectReason.BUSY,
                    message="no free executor of this class",
                    receipts=await receipts.busy_receipts(message.executor_class),
                )
            )
            return
        slot.gateway_port, slot.validator_hotkey = port, self.peer_hotkey
        miner_status().job_started(message.job_id, str(self.peer_hotkey), message.executor_class)
        accepted = JobAccepted(job_id=message.job_id, gpus=list(slot.gpus))
        slot.reported.append(accepted.encode())
        await self.send_message(accepted)
        if slot.connected:
            await to_executor(slot, _reserved(slot))

    async def frame_job_full(self, message: JobFull) -> None:
        slot = self._own_slot(message.job_id)
        if slot is None:
            await self.send_message(
                Error(code="unknown_job", message="no reservation for this job", ref=message.job_id)
            )
            return
        if slot.full_forwarded:
            return  # resent after a reconnect: the executor has it
        slot.full_forwarded = True
        await to_executor(slot, message)

    async def frame_job_cancel(self, message: JobCancel) -> None:
        slot = self._own_slot(message.job_id)
        if slot is None or (message.attempt is not None and receipts.reserved_attempt(slot) != message.attempt):
            return
        await stop_job(slot, message.reason or "cancelled by the validator")

    async def frame_receipt_sign(self, message: ReceiptSign) -> None:
        """Countersign the receipts the connected validator signed, keep them, and send them back
        (in one frame, as they came).

        Each refused with an ``error`` frame, and nothing kept of it: a receipt naming another
        validator (``wrong_validator``) or another miner (``wrong_miner``), a validator signature
        that does not verify (``bad_signature``), an ``accepted`` / ``finished`` receipt for a job
        attempt this miner never had (``unknown_job``), or a different receipt already kept under
        the same key (``receipt_conflict``). The same receipt again is answered again.
        """
        signed = [countersigned for receipt in message.receipts if (countersigned := await self._countersign(receipt))]
        if not signed:
            return
        kept: list[Receipt] = []
        for outcome in await database_sync_to_async(receipts.store_each)(signed):
            if isinstance(outcome, receipts.ReceiptConflict):
                await self._refuse_receipt(outcome.payload, outcome.code, str(outcome))
            else:
                kept.append(outcome)
        if kept:
            await self.send_message(ReceiptSigned(receipt=kept[0], more=kept[1:]))

    async def _countersign(self, receipt: Receipt) -> Receipt | None:
        """``receipt`` countersigned, or ``None`` once refused."""
        payload = receipt.payload
        if payload.validator_hotkey != self.peer_hotkey:
            await self._refuse_receipt(payload, "wrong_validator", "the receipt names another validator than this one")
            return None
        try:
            signed = countersign(own_keypair(), receipt)
        except SignatureError as exc:
            await self._refuse_receipt(
                payload, "wrong_miner" if exc.code == "wrong_miner" else "bad_signature", exc.message
            )
            return None
        if payload.kind is not ReceiptKind.STARTED and not await self._had_job(payload):
            why = f"this miner had no attempt {payload.attempt} of this job in {payload.executor_class} for you"
            await self._refuse_receipt(payload, "unknown_job", why)
            return None
        return signed

    async def _had_job(self, payload: ReceiptPayload) -> bool:
        """Does this validator's job attempt hold an executor here now, or did its ``accepted`` receipt?"""
        slot = self._own_slot(payload.job_id)
        if (
            slot is not None
            and slot.executor_class == payload.executor_class
            and receipts.reserved_attempt(slot) == payload.attempt
        ) or receipts.recently_accepted(payload):
            return True
        return await database_sync_to_async(receipts.had_job)(payload)

    async def _refuse_receipt(self, payload: ReceiptPayload, code: str, why: str) -> None:
        log.warning("refused a %s receipt from %s…: %s (%s)", payload.kind.value, str(self.peer_hotkey)[:12], code, why)
        await self.send_message(Error(code=code, message=why, ref=payload.job_id))

    async def frame_relay_reply(self, message: RelayReply) -> None:
        """A reply for one of this validator's job attempts here: on to that job's executor."""
        slot = self._own_slot(message.job_id)
        if slot is None or receipts.reserved_attempt(slot) != message.attempt or not slot.connected:
            log.info(
                "relay.reply %s for job %s attempt %d, not running here",
                message.call_id,
                message.job_id,
                message.attempt,
            )
            await self.send_message(
                Error(code="unknown_job", message="no executor runs this job attempt here", ref=message.job_id)
            )
            return
        await to_executor(slot, message)

    def _own_slot(self, job_id: str) -> ExecutorSlot | None:
        slot = get_pool().jobs.get(job_id)
        return slot if slot is not None and slot.validator_channel == self.channel_name else None

    async def validator_forward(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["frame"])

    async def disconnect(self, code: int) -> None:
        miner_status().validator_gone(self.channel_name)
        pool = get_pool()
        if self._manifest_changed in pool.on_change:
            pool.on_change.remove(self._manifest_changed)
        # Its jobs go on, held until this validator reconnects (miner/holds.py); with no grace,
        # nobody is left to report to: they stop and free their executors.
        holds = get_holds()
        for slot in [slot for slot in pool.jobs.values() if slot.validator_channel == self.channel_name]:
            slot.validator_channel = None
            if holds.grace_s > 0:
                log.warning("validator gone: holding job %s for %gs", slot.job_id, holds.grace_s)
                holds.hold(slot, str(self.peer_hotkey))
            else:
                log.warning("validator gone: cancelling job %s", slot.job_id)
                await stop_job(slot, "validator disconnected")


class ExecutorConsumer(AuthenticatedConsumer):
    role = "executor"
    inbound = EXECUTOR_TO_MINER
    slot: ExecutorSlot | None = None

    async def is_allowed(self, hotkey: str) -> bool:
        return get_pool().is_expected(hotkey)

    async def authenticated(self) -> None:
        assert self.peer_hotkey is not None
        self.slot = get_pool().attach(self.peer_hotkey, self.channel_name)
        if self.slot.job_id is not None and self.slot.initial_frame is not None:
            await self.send_message(_reserved(self.slot))

    async def executor_forward(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["frame"])

    async def _relay(
        self, message: ExecutorReady | VolumesReady | ExecutionDone | JobFinished | JobFailed | JobInfraFailed
    ) -> None:
        slot = self.slot
        if slot is None or slot.job_id != message.job_id:
            await self.send_message(Error(code="unknown_job", message="not your job", ref=message.job_id))
            return
        if isinstance(message, JobFinished | JobFailed | JobInfraFailed):
            slot.finished = True
        miner_status().job_reported(message)
        await relay_to_validator(slot, message.encode())
        if isinstance(message, JobFinished | JobFailed):
            # The executor ended its job itself and serves the next (executor/__main__.py).
            self.slot = get_pool().recycle(slot) or slot

    async def frame_job_streaming_ready(self, message: StreamingReady) -> None:
        """Vouch for the job's gateway: the miner signs where it answers and with which key."""
        slot = self.slot
        readiness = message.endpoint.readiness
        expected = (slot.job_id, slot.gateway_port, settings.MINER_STREAMING_ADDRESS) if slot else None
        if slot is None or (readiness.job_id, readiness.port, readiness.address) != expected:
            await self.send_message(
                Error(code="bad_readiness", message=f"readiness must be for {expected}", ref=message.job_id)
            )
            return
        keypair = own_keypair()
        endpoint = message.endpoint.model_copy(
            update={"miner_hotkey": keypair.hotkey, "miner_signature": sign_readiness(keypair, readiness)}
        )
        miner_status().job_reported(message)
        await relay_to_validator(slot, StreamingReady(job_id=message.job_id, endpoint=endpoint).encode())

    async def frame_relay_call(self, message: RelayCall) -> None:
        """A call from this executor's job attempt, on to its validator; the driver is not involved.

        Not kept for a replay like the job's reports: while the validator is away the call is
        answered ``unavailable`` (the caller may call again).
        """
        slot = self.slot
        if slot is None or slot.job_id != message.job_id or receipts.reserved_attempt(slot) != message.attempt:
            await self.send_message(RelayReply.refuse(message, "unknown_job", "not your job attempt"))
            return
        if slot.validator_channel is None:
            await self.send_message(RelayReply.refuse(message, "unavailable", "the job's validator is not connected"))
            return
        await send_event(slot.validator_channel, {"type": "validator.forward", "frame": message.encode()})

    frame_executor_ready = _relay
    frame_job_volumes_ready = _relay
    frame_job_execution_done = _relay
    frame_job_finished = _relay
    frame_job_failed = _relay
    frame_job_infra_failed = _relay

    async def disconnect(self, code: int) -> None:
        slot = self.slot
        if slot is None:
            return
        if slot.job_id is not None and not slot.finished:
            failure = JobFailure(
                reason=InfraFailureReason.EXECUTOR_DISCONNECTED,
                message=f"executor disconnected mid-job (close code {code})",
                reported_by="miner",
            )
            lost = JobInfraFailed(job_id=slot.job_id, failure=failure)
            miner_status().job_reported(lost)
            await relay_to_validator(slot, lost.encode())
        get_pool().release(slot)


def _reserved(slot: ExecutorSlot) -> JobReserved:
    """What the executor of ``slot`` gets: the validator's ``job.initial`` as it came, and the
    miner's own part beside it (the gateway port), which the validator never sees."""
    assert slot.initial_frame is not None
    return JobReserved(initial=JobInitial.model_validate_json(slot.initial_frame), gateway_port=slot.gateway_port)
