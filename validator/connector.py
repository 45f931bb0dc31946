"""The validator's long-running process: facilitator connection, miner connections, job drivers.

This module supervises: it keeps the connections up (each a
:class:`~protocol.transport.ReconnectingClient`, which reconnects with backoff), dials and hangs
up on miners, dispatches the facilitator's frames, and runs a :class:`JobDriver` task per job.
What a job's row says is validator/jobs.py's: jobs arrive as ``job.new`` (possibly redelivered:
handled idempotently), are re-verified against the client's signature and stored there, then
acknowledged and driven here. Every status goes back to the facilitator through the
connection's outbox, which survives reconnects. On start, jobs a previous run left unfinished
are driven again as a new attempt (or ended ``infra_failed`` when no attempt is left), so a
restart leaves no job hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings

from node.registry_client import RegistryClient
from protocol.keys import Keypair
from protocol.messages import (
    FACILITATOR_TO_VALIDATOR,
    Capacity,
    ClassCapacity,
    JobCancel,
    JobFailure,
    JobNew,
    JobReceived,
    JobStatusAck,
    JobStatusUpdate,
    RelayReply,
    ReportMalicious,
    ReportOutcome,
    Scores,
    StreamingEndpoint,
)
from protocol.registry import Role
from protocol.scores import ScoreSheet
from protocol.spec import parse_spec
from protocol.status import InfraFailureReason, JobStatus
from protocol.transport import FrameHandlers, ReconnectingClient
from validator import jobs
from validator.crossval import CrossValidator
from validator.driver import ActiveJob, JobDriver
from validator.ledger import Ledger
from validator.miners import CapacityWatch, MinerConnection, parse_miner
from validator.models import PublishedScores
from validator.registry import MinerDirectory
from validator.relay import Relay
from validator.reports import judge_report
from validator.routing import retry_or_final
from validator.status import StatusFile

__all__ = ["Connector"]

log = logging.getLogger("grid.validator")


class Connector(FrameHandlers):
    peer_name = "facilitator"

    def __init__(
        self,
        keypair: Keypair,
        facilitator_url: str,
        facilitator_hotkey: str | None,
        miners: list[str],
        queue_timeout: float = 300.0,
        *,
        registry: RegistryClient | None = None,
        registry_interval: float = 30.0,
        status_path: str | None = None,
    ) -> None:
        self.keypair = keypair
        self.capacity = CapacityWatch()
        self.queue_timeout = queue_timeout
        trusted = frozenset(getattr(settings, "VALIDATOR_TRUSTED_MINERS", ()))
        self.ledger = Ledger(keypair, blacklist_s=getattr(settings, "VALIDATOR_BLACKLIST_S", 86400.0), trusted=trusted)
        self.miners = [self._watch(MinerConnection(*parse_miner(entry), keypair, self.capacity)) for entry in miners]
        self.crossval = CrossValidator(
            lambda: self.miners,
            self.ledger,
            trusted,
            getattr(settings, "VALIDATOR_CROSSVAL_SAMPLE", 0.0),
            capacity=self.capacity,
            queue_timeout=queue_timeout,
        )
        self.facilitator = ReconnectingClient(
            facilitator_url,
            keypair,
            "validator",
            FACILITATOR_TO_VALIDATOR,
            self.handle_frame,
            server_hotkey=facilitator_hotkey,
            name="facilitator",
        )
        self.facilitator.on_connect = self._facilitator_connected
        self._capacity_told: tuple[dict, dict, float] = ({}, {}, 0.0)  # what the facilitator was last told
        self.relay = Relay(lambda: self.miners, self.facilitator)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.drivers: dict[str, JobDriver] = {}  # jobs being driven now (a report may be about one)
        # With a registry, the miners are the registry's (validator/registry.py); else the static list.
        self.directory = MinerDirectory(self, registry, registry_interval) if registry is not None else None
        if registry is not None:
            self.ledger.known_validators = lambda: _registered_validators(registry)
        self._clients: dict[str, asyncio.Task[None]] = {}
        self.status = StatusFile(status_path, self._describe)
        self.status.track([self.facilitator, *(miner.client for miner in self.miners)])

    def __repr__(self) -> str:
        return f"<Connector {self.keypair.hotkey[:12]}… jobs={len(self.tasks)}>"

    def _watch(self, miner: MinerConnection) -> MinerConnection:
        """Route a miner connection's manifests and receipts to the ledger, its relayed calls to the relay."""
        miner.on_receipt = self.ledger.countersigned
        miner.on_manifest = self.ledger.manifest
        miner.on_relay = lambda miner, call: self.relay.up(miner, call)  # built after the static list's miners
        return miner

    def add_miner(self, hotkey: str, url: str) -> MinerConnection:
        """Dial one more miner (from the registry); routing sees it at once."""
        miner = self._watch(MinerConnection(hotkey, url, self.keypair, self.capacity))
        self.status.track([miner.client])
        self.miners = [*self.miners, miner]
        self._clients[hotkey] = asyncio.create_task(miner.client.run_forever(), name=f"miner {hotkey[:12]}")
        self.status.write()
        return miner

    async def drop_miner(self, hotkey: str) -> None:
        """Hang up on a miner: its jobs see it lost (retried elsewhere as their specs allow)."""
        self.miners = [miner for miner in self.miners if miner.hotkey != hotkey]
        task = self._clients.pop(hotkey, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.capacity.notify()
        self.status.write()

    def _describe(self) -> dict:
        return {
            "hotkey": self.keypair.hotkey,
            "facilitator": self.facilitator.connected.is_set(),
            "miners": {miner.hotkey: miner.connected for miner in self.miners},
            "registry_version": self.directory.version if self.directory is not None else None,
        }

    async def run(self) -> None:
        following = []
        if self.directory is not None:
            await self.directory.first_snapshot()  # know the miners before taking any job
            following.append(asyncio.create_task(self.directory.run(), name="registry"))
        for miner in self.miners:  # the static list's (the registry's are dialled as they are added)
            if miner.hotkey not in self._clients:
                self._clients[miner.hotkey] = asyncio.create_task(miner.client.run_forever())
        self.status.write()
        facilitator = asyncio.create_task(self.facilitator.run_forever())
        ledger = asyncio.create_task(self.ledger.run(), name="ledger")
        scores = asyncio.create_task(self._send_scores(), name="scores")
        following.append(asyncio.create_task(self._send_capacity(), name="capacity"))
        await self._resend_finals()
        await self._recover()
        try:
            # Not the miners' clients: the registry may drop (cancel) one at any time.
            await asyncio.gather(facilitator, ledger, scores, *following)
        finally:
            for task in [facilitator, ledger, scores, *following, *self._clients.values(), *self.tasks.values()]:
                task.cancel()
            with contextlib.suppress(Exception):
                await self.ledger.flush()

    # -- incoming ------------------------------------------------------------------------------

    # Frames from the facilitator (protocol.transport.FrameHandlers: type → frame_<name>); any
    # other is logged and answered ``unsupported``.

    async def frame_job_new(self, message: JobNew) -> None:
        await self._take(message)

    async def frame_job_cancel(self, message: JobCancel) -> None:
        await self._cancel(message)

    async def frame_report_malicious(self, message: ReportMalicious) -> None:
        await self._judge(message)

    async def frame_job_status_ack(self, message: JobStatusAck) -> None:
        await self._acknowledged(message)

    async def frame_relay_reply(self, message: RelayReply) -> None:
        await self.relay.down(message)

    async def _acknowledged(self, message: JobStatusAck) -> None:
        """The facilitator stored these statuses: stop resending them, ended jobs' included."""
        self.facilitator.acknowledge(key.key() for key in message.statuses)
        self.ledger.acknowledged(message.statuses)  # written with the ledger's next batch

    async def _resend_finals(self) -> None:
        """Send again how every job ended that the facilitator has not acknowledged (a restart lost them)."""
        finals = await jobs.unacknowledged_finals()
        for final in finals:
            self._report(final)
        if finals:
            log.info("resending how %d jobs ended: the facilitator had not acknowledged it", len(finals))

    async def _take(self, message: JobNew) -> None:
        if message.job_id in self.tasks:
            self.facilitator.send(JobReceived(job_id=message.job_id))  # a redelivery: just acknowledge again
            return
        taken = await jobs.accept(message)
        if taken is None:  # taken before (e.g. before a restart)
            self.facilitator.send(JobReceived(job_id=message.job_id))
            return
        # A new job's first status (received, or failed) tells the facilitator it arrived.
        if isinstance(taken, jobs.Refused):
            self._report_own(taken.update)
            return
        self._report_own(JobStatusUpdate(job_id=message.job_id, status=JobStatus.RECEIVED, at=time.time()))
        self._start(taken)

    async def _cancel(self, message: JobCancel) -> None:
        task = self.tasks.get(message.job_id)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await jobs.cancelled(message.job_id)  # the facilitator decided it: nothing to tell it, nothing to resend
        failure = JobFailure(reason="cancelled", message=message.reason, reported_by="facilitator")
        self.ledger.status(  # for the record: the facilitator already told its clients
            JobStatusUpdate(job_id=message.job_id, status=JobStatus.CANCELLED, at=time.time(), failure=failure)
        )

    async def _judge(self, message: ReportMalicious) -> None:
        """A client's malicious-miner report: blacklist the miner if the evidence holds, and say so."""
        report = message.report
        record = await jobs.find(report.job_id)
        readiness = StreamingEndpoint.model_validate(record.readiness) if record and record.readiness else None
        miner = record.miner_hotkey if record else ""
        running = self.drivers.get(report.job_id)
        if running is not None and running.readiness is not None and running.miner is not None:
            readiness, miner = running.readiness, running.miner.hotkey  # a streaming job still serving
        verdict = judge_report(
            report,
            job_client=record.client_hotkey if record else None,
            job_miner=miner,
            streaming_key=record.spec.get("streaming_public_key") if record else None,
            readiness=readiness,
            trusted_miners=frozenset(getattr(settings, "VALIDATOR_TRUSTED_MINERS", ())),
        )
        until = None
        if verdict.accepted and verdict.miner_hotkey:
            reason = f"malicious-miner report {message.report_id} on job {report.job_id}"
            until = self.ledger.blacklist(
                verdict.miner_hotkey,
                reason,
                "malicious_report",
                report.job_id,
                evidence={"report_id": message.report_id, "report": report.model_dump(mode="json")},
            )
        else:
            log.info("report %s refused: %s (%s)", message.report_id, verdict.message, verdict.reason)
        self.facilitator.send(
            ReportOutcome(
                report_id=message.report_id,
                accepted=verdict.accepted,
                reason=verdict.reason,
                message=verdict.message,
                miner_hotkey=verdict.miner_hotkey,
                blacklisted_until=until,
            )
        )

    async def _send_scores(self, every_s: float = 2.0) -> None:
        """Send the score sheets the scoring task stored and the facilitator has not had yet."""
        while True:
            rows = await sync_to_async(list)(PublishedScores.objects.filter(sent=False).order_by("at")[:10])
            for row in rows:
                self.facilitator.send(Scores(sheet=ScoreSheet.model_validate(row.sheet)))
            if rows:
                await PublishedScores.objects.filter(id__in=[row.id for row in rows]).aupdate(sent=True)
            await asyncio.sleep(every_s)

    def offered(self) -> dict[str, ClassCapacity]:
        """The executor classes the connected miners offer, summed over them."""
        classes: dict[str, ClassCapacity] = {}
        for miner in self.miners:
            if not miner.connected:
                continue
            for name, capacity in miner.reported.items():
                have = classes.get(name)
                classes[name] = ClassCapacity(
                    total=capacity.total + (have.total if have else 0),
                    free=capacity.free + (have.free if have else 0),
                    spec=have.spec if have and have.spec else capacity.spec,
                )
        return classes

    def _tell_capacity(self) -> None:
        offer = self.offered()
        self.facilitator.send(Capacity(classes=offer))
        self._capacity_told = ({name: (c.total, c.spec) for name, c in offer.items()}, offer, time.monotonic())

    async def _facilitator_connected(self, connection: object) -> None:
        self._tell_capacity()  # a new connection may be a new facilitator process: it knows nothing yet

    async def _send_capacity(self, least_s: float = 0.2, refresh_s: float = 5.0) -> None:
        """Tell the facilitator what the miners offer when a class or its size changes (at once), and
        when only free counts moved (every ``refresh_s``, not on every job); on connect too (above)."""
        while True:
            await self.capacity.changed(refresh_s)
            if self.facilitator.connected.is_set():
                offer = self.offered()
                shape, told, at = self._capacity_told
                if shape != {name: (c.total, c.spec) for name, c in offer.items()} or (
                    offer != told and time.monotonic() - at >= refresh_s
                ):
                    self._tell_capacity()
            await asyncio.sleep(least_s)

    # -- driving -------------------------------------------------------------------------------

    def _report(self, update: JobStatusUpdate) -> None:
        # Kept until the facilitator acknowledges it, and resent on every reconnect until then.
        self.facilitator.send(update, ack_key=(update.job_id, update.attempt, update.status.value))

    def _report_own(self, update: JobStatusUpdate) -> None:
        """A status the connector itself decides (not a driver's): recorded, then sent."""
        self.ledger.status(update)
        self._report(update)

    def _start(self, job: ActiveJob) -> None:
        self.tasks[job.job_id] = asyncio.create_task(self._drive(job), name=f"job {job.job_id}")

    async def _drive(self, job: ActiveJob) -> None:
        try:
            driver = JobDriver(
                job, self.crossval.miners_for(job), self._report, self.capacity, self.queue_timeout, ledger=self.ledger
            )
            self.drivers[job.job_id] = driver
            final = await driver.run()
            await jobs.finished(job, final, driver.readiness)
            completed = final.status is JobStatus.COMPLETED and final.result and final.miner
            if completed and self.crossval.wanted(job, final.miner):
                self.crossval.start(job, final.miner, final.result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s: driver crashed", job.job_id)
            failure = JobFailure(reason=InfraFailureReason.INTERNAL_ERROR, message=str(exc), reported_by="validator")
            crashed = JobStatusUpdate(
                job_id=job.job_id, status=JobStatus.INFRA_FAILED, attempt=job.attempt, at=time.time(), failure=failure
            )
            self._report_own(crashed)
            await jobs.ended(job.job_id, crashed)
        finally:
            self.tasks.pop(job.job_id, None)
            self.drivers.pop(job.job_id, None)

    async def _recover(self) -> None:
        """Drive again, as a new attempt, every job a previous run of this validator left unfinished."""
        unfinished = await jobs.unfinished()
        if unfinished:
            # Give the miners a moment to connect so the retry has somewhere to go.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await asyncio.gather(*(miner.client.connected.wait() for miner in self.miners))
                    await asyncio.sleep(0.1)  # first manifest
        for record in unfinished:
            spec = parse_spec(record.spec)
            failure = JobFailure(
                reason=InfraFailureReason.VALIDATOR_RESTARTED,
                message="the validator restarted while driving this job",
                reported_by="validator",
            )
            retry = retry_or_final(
                failure, infra=True, attempt=record.attempt, max_attempts=spec.max_attempts
            ).retry  # anywhere: no miner was tried for this attempt yet
            ended = JobStatusUpdate(
                job_id=record.job_id,
                status=JobStatus.INFRA_FAILED,
                attempt=record.attempt,
                at=time.time(),
                failure=failure,
                retrying=retry,
            )
            self._report_own(ended)
            if not retry:
                await jobs.ended(record.job_id, ended)
                continue
            log.info("resuming job %s as attempt %d", record.job_id, record.attempt + 1)
            self._start(await jobs.next_attempt(record, spec))


def _registered_validators(registry: RegistryClient) -> frozenset[str]:
    """The active validators the registry lists now (their receipts can prove a miner busy)."""
    snapshot = registry.current()
    return frozenset(neuron.hotkey for neuron in snapshot.of_role(Role.VALIDATOR)) if snapshot else frozenset()
