"""The validator's connection to one miner: its manifest and the per-job inboxes of its messages."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

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
    JobFinished,
    JobInfraFailed,
    JobInitial,
    JobsRunning,
    Manifest,
    Message,
    ReceiptSigned,
    RelayCall,
    RelayReply,
    StreamingReady,
    VolumesReady,
)
from protocol.receipts import Receipt
from protocol.spec import ResourceLimits
from protocol.transport import FrameHandlers, ReconnectingClient

__all__ = ["CapacityWatch", "Inbox", "MinerAway", "MinerBack", "MinerConnection", "MinerLost", "parse_miner"]

log = logging.getLogger("grid.validator.miners")


class CapacityWatch:
    """Wakes the drivers waiting for a free executor whenever any miner's manifest changes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def changed(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class MinerAway:
    """Put into a job's inbox when the miner's connection drops: the miner may hold the job for
    us and resume it when we reconnect (miner/holds.py), so the driver waits a while."""


class MinerBack:
    """Put into a job's inbox when the reconnected miner says it still runs the job's attempt;
    the frames the job reported while we were away follow."""


class MinerLost:
    """Put into a job's inbox when the reconnected miner no longer runs the job's attempt."""


JobReport = ExecutorReady | VolumesReady | StreamingReady | ExecutionDone | JobFinished | JobFailed | JobInfraFailed
Inbox = asyncio.Queue[Message | MinerAway | MinerBack | MinerLost]


def parse_miner(entry: str) -> tuple[str, str]:
    """``HOTKEY@ws://host:port/ws/validator/`` → (hotkey, url).

    Raises:
        ValueError: the entry is malformed.
    """
    hotkey, sep, url = entry.partition("@")
    if not sep or len(hotkey) != 64 or not url.startswith(("ws://", "wss://")):
        raise ValueError(f"miner {entry!r} must look like HOTKEY@ws://host:port/ws/validator/")
    return hotkey, url


class MinerConnection(FrameHandlers):
    """``reported`` is the miner's last manifest; ``manifest``, what routing sees, is that less this
    validator's offers the miner cannot have counted in it yet.

    Without that, every driver waiting for an executor woke on each manifest change, saw the same
    free executor and offered it its job: one was accepted and the others were declined ``busy``,
    each decline carrying receipts for the validator to verify (with 100 jobs queued on three
    miners, 800 declines for 300 jobs). An offer (``job.initial`` sent) counts until the miner
    answers it; an accepted one until the next manifest, which the miner builds after reserving.
    """

    def __init__(self, hotkey: str, url: str, keypair: Keypair, capacity: CapacityWatch | None = None) -> None:
        self.hotkey = hotkey
        self.peer_name = f"miner {hotkey[:12]}"
        self.capacity = capacity or CapacityWatch()
        self.reported: dict[str, ClassCapacity] = {}
        self.manifest: dict[str, ClassCapacity] = {}
        self._offered: dict[str, str] = {}  # job id → class: job.initial sent, not answered yet
        self._accepted: dict[str, str] = {}  # job id → class: accepted since the last manifest
        self.inboxes: dict[str, Inbox] = {}
        self.attempts: dict[str, str] = {}  # job id → executor class of each attempt under way here
        self.attempt_numbers: dict[str, int] = {}  # job id → which attempt of the job that is
        self._away: set[str] = set()  # jobs under way here when the connection dropped
        # Set by the connector to its ledger's methods: (hotkey, receipt) and (hotkey, classes, connected).
        self.on_receipt: Callable[[str, Receipt], None] | None = None
        self.on_manifest: Callable[[str, dict[str, ClassCapacity], bool], None] | None = None
        # Set by the connector to its relay (validator/relay.py): calls from this miner's jobs.
        self.on_relay: Callable[[MinerConnection, RelayCall], None] | None = None
        self.client = ReconnectingClient(
            url,
            keypair,
            "validator",
            MINER_TO_VALIDATOR,
            self.handle_frame,
            server_hotkey=hotkey,
            on_disconnect=self._lost,
            name=f"miner {hotkey[:12]}",
        )

    def __repr__(self) -> str:
        return f"<MinerConnection {self.hotkey[:12]}… {'up' if self.connected else 'down'}>"

    @property
    def connected(self) -> bool:
        return self.client.connected.is_set()

    def free(self, executor_class: str) -> int:
        capacity = self.manifest.get(executor_class)
        return capacity.free if capacity else 0

    def offers(self, executor_class: str, limits: ResourceLimits | None = None) -> bool:
        """Connected, with executors of the class, each big enough for ``limits`` (when given)."""
        capacity = self.manifest.get(executor_class)
        if not (self.connected and capacity is not None and capacity.total > 0):
            return False
        return limits is None or capacity.spec is None or capacity.spec.shortfall(limits) is None

    def shortfall(self, executor_class: str, limits: ResourceLimits) -> str | None:
        """Why this miner's executors of the class are too small for ``limits``, if they are."""
        capacity = self.manifest.get(executor_class)
        return capacity.spec.shortfall(limits) if capacity is not None and capacity.spec is not None else None

    def open_inbox(self, job_id: str, executor_class: str = "", attempt: int = 1) -> Inbox:
        inbox: Inbox = asyncio.Queue()
        self.inboxes[job_id] = inbox
        self.attempts[job_id] = executor_class
        self.attempt_numbers[job_id] = attempt
        return inbox

    def close_inbox(self, job_id: str) -> None:
        self.inboxes.pop(job_id, None)
        self.attempts.pop(job_id, None)
        self.attempt_numbers.pop(job_id, None)
        self._away.discard(job_id)
        self._forget_offer(job_id)

    def in_flight(self, executor_class: str) -> set[str]:
        """This validator's jobs offered to the miner in ``executor_class`` and not ended yet."""
        return {job_id for job_id, cls in self.attempts.items() if cls == executor_class}

    def send(self, message: Message) -> None:
        if isinstance(message, JobInitial):
            self._offered[message.job_id] = message.executor_class
            self._recount()
        self.client.send(message)

    def _recount(self) -> None:
        held = Counter(self._offered.values())
        held.update(self._accepted.values())
        self.manifest = {
            name: capacity.model_copy(update={"free": max(0, capacity.free - held[name])}) if held[name] else capacity
            for name, capacity in self.reported.items()
        }

    def _forget_offer(self, job_id: str) -> None:
        """The offer of ``job_id`` is over without a reservation to count: the executor is ours to offer again."""
        if self._offered.pop(job_id, None) is not None or self._accepted.pop(job_id, None) is not None:
            self._recount()
            self.capacity.notify()

    # -- frames from the miner (protocol.transport.FrameHandlers: type → frame_<name>) -----------

    async def frame_manifest(self, message: Manifest) -> None:
        self.reported = dict(message.classes)
        self._accepted.clear()  # built after those reservations: it counts them
        self._recount()
        self.capacity.notify()
        if self.on_manifest is not None:
            self.on_manifest(self.hotkey, self.reported, True)

    async def frame_jobs_running(self, message: JobsRunning) -> None:
        self._resume(message.jobs)

    async def frame_receipt_signed(self, message: ReceiptSigned) -> None:
        if self.on_receipt is not None:
            for receipt in message.receipts:
                self.on_receipt(self.hotkey, receipt)

    async def frame_error(self, message: Error) -> None:
        if message.ref is None:
            log.warning("miner %s says: %s (%s)", self.hotkey[:12], message.message, message.code)
            return
        self._forget_offer(message.ref)
        self._to_inbox(message.ref, message)

    async def frame_job_accepted(self, message: JobAccepted) -> None:
        cls = self._offered.pop(message.job_id, None)
        if cls is not None:
            self._accepted[message.job_id] = cls
        self._to_inbox(message.job_id, message)

    async def frame_job_declined(self, message: JobDeclined) -> None:
        self._forget_offer(message.job_id)
        self._to_inbox(message.job_id, message)

    async def _job_report(self, message: JobReport) -> None:
        self._to_inbox(message.job_id, message)

    frame_executor_ready = _job_report
    frame_job_volumes_ready = _job_report
    frame_job_streaming_ready = _job_report
    frame_job_execution_done = _job_report
    frame_job_finished = _job_report
    frame_job_failed = _job_report
    frame_job_infra_failed = _job_report

    async def frame_relay_call(self, message: RelayCall) -> None:
        if self.on_relay is None:
            self.client.send(RelayReply.refuse(message, "unavailable", "this validator relays no calls"))
            return
        self.on_relay(self, message)

    def _to_inbox(self, job_id: str, message: Message) -> None:
        """Hand a job's frame to the driver of its attempt here; one for no job we drive is logged."""
        inbox = self.inboxes.get(job_id)
        if inbox is None:
            log.info("miner %s: %s for job %s, which we do not drive here", self.hotkey[:12], message.type, job_id)
            return
        inbox.put_nowait(message)

    async def _lost(self) -> None:
        self.reported, self.manifest = {}, {}
        self._offered.clear()
        self._accepted.clear()
        self.capacity.notify()
        if self.on_manifest is not None:
            self.on_manifest(self.hotkey, {}, False)
        self._away = set(self.inboxes)
        for inbox in self.inboxes.values():
            inbox.put_nowait(MinerAway())

    def _resume(self, running: dict[str, int]) -> None:
        """The miner is back and still runs ``running`` (job id → attempt) for us: each job under
        way here when the connection dropped carries on if its attempt is among them, and has
        ended otherwise. The miner's other jobs for us we no longer drive (we restarted, or that
        attempt was given up): cancelled, that attempt only."""
        away, self._away = self._away, set()
        for job_id in away:
            inbox = self.inboxes.get(job_id)
            if inbox is not None:
                resumed = running.get(job_id) == self.attempt_numbers.get(job_id)
                inbox.put_nowait(MinerBack() if resumed else MinerLost())
        for job_id, attempt in running.items():
            if self.attempt_numbers.get(job_id) != attempt:
                log.info(
                    "miner %s still runs attempt %d of %s, which we no longer drive: cancelling",
                    self.hotkey[:12],
                    attempt,
                    job_id,
                )
                self.client.send(
                    JobCancel(job_id=job_id, attempt=attempt, reason="the validator no longer drives this attempt")
                )
