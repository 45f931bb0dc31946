"""What the validator keeps: every job it took (so a restart can finish what it started), and the
marketplace's record around them: status history, routing decisions, receipts, incidents,
blacklist entries and published scores (DESIGN.md §8). The dashboard reads these tables.
"""

from __future__ import annotations

from django.db import IntegrityError, models

from protocol.receipts import Receipt
from protocol.status import JobStatus

__all__ = [
    "BlacklistEntry",
    "Incident",
    "JobEvent",
    "MinerRecord",
    "PublishedScores",
    "ReceiptRecord",
    "RoutingDecision",
    "ValidatorJob",
]

HOTKEY = {"max_length": 64}


class ValidatorJob(models.Model):
    job_id = models.CharField(max_length=64, primary_key=True)
    client_hotkey = models.CharField(max_length=64)
    spec = models.JSONField()
    client_signature = models.CharField(max_length=128)
    links = models.JSONField(default=dict, blank=True)  # the facilitator's StoreLinks, beside the signed spec
    status = models.CharField(
        max_length=16, choices=[(s.value, s.value) for s in JobStatus], default=JobStatus.RECEIVED
    )
    attempt = models.PositiveIntegerField(default=1)
    miner_hotkey = models.CharField(max_length=64, blank=True, default="")
    executor_class = models.CharField(max_length=64, blank=True, default="")
    failure = models.JSONField(null=True, blank=True)
    readiness = models.JSONField(null=True, blank=True)  # the vouched StreamingEndpoint of a streaming job
    outputs_digest = models.CharField(max_length=64, blank=True, default="")
    # The terminal JobStatusUpdate, kept until the facilitator acknowledges it: a validator that
    # restarts before then sends it again (validator/connector.py, DESIGN.md §3).
    final = models.JSONField(null=True, blank=True)
    final_acked = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"job {self.job_id} ({self.status})"


class JobEvent(models.Model):
    """One status a job passed, as reported to the facilitator."""

    job_id = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16)
    attempt = models.PositiveIntegerField(default=1)
    miner_hotkey = models.CharField(max_length=64, blank=True, default="")
    at = models.FloatField(db_index=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.job_id} {self.status} @{self.at:.3f}"


class MinerRecord(models.Model):
    """A miner this validator knows, with its last manifest."""

    hotkey = models.CharField(primary_key=True, **HOTKEY)
    address = models.CharField(max_length=512, blank=True, default="")
    manifest = models.JSONField(default=dict, blank=True)
    connected = models.BooleanField(default=False)
    trusted = models.BooleanField(default=False)
    receipts_cursor = models.PositiveBigIntegerField(default=0)  # the miner's receipt pages read up to here
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"miner {self.hotkey[:12]}"


class RoutingDecision(models.Model):
    """Why a job attempt went to a miner (or to none): every candidate with its weight or why it was skipped."""

    job_id = models.CharField(max_length=64, db_index=True)
    attempt = models.PositiveIntegerField(default=1)
    at = models.FloatField(db_index=True)
    executor_class = models.CharField(max_length=64)
    chosen = models.CharField(max_length=64, blank=True, default="")
    reason = models.CharField(max_length=64)
    candidates = models.JSONField(default=list)  # [{hotkey, free, weight, skipped}]: eligible and notable skips
    skipped = models.JSONField(default=dict, blank=True)  # {reason: how many miners it left out}

    class Meta:
        ordering = ["-at", "-id"]


class ReceiptRecordManager(models.Manager["ReceiptRecord"]):
    def keep(self, receipt: Receipt) -> bool:
        """Store a verified receipt; ``False`` when it is known already (a redelivery, or fetched before)."""
        try:
            self.model.from_receipt(receipt).save(force_insert=True)
        except IntegrityError:
            return False
        return True


class ReceiptRecord(models.Model):
    """A receipt this validator signed, or fetched from a miner, once both signatures verified."""

    job_id = models.CharField(max_length=64, db_index=True)
    attempt = models.PositiveIntegerField()
    kind = models.CharField(max_length=16)
    validator_hotkey = models.CharField(**HOTKEY)
    miner_hotkey = models.CharField(db_index=True, **HOTKEY)
    executor_class = models.CharField(max_length=64)
    at = models.FloatField(db_index=True)
    status = models.CharField(max_length=32, blank=True, default="")
    receipt = models.JSONField()

    objects = ReceiptRecordManager()

    @classmethod
    def from_receipt(cls, receipt: Receipt) -> ReceiptRecord:
        """The row of ``receipt`` (verified by the caller), unsaved."""
        payload = receipt.payload
        return cls(
            job_id=payload.job_id,
            attempt=payload.attempt,
            kind=payload.kind.value,
            validator_hotkey=payload.validator_hotkey,
            miner_hotkey=payload.miner_hotkey,
            executor_class=payload.executor_class,
            at=payload.at,
            status=payload.status or "",
            receipt=receipt.model_dump(mode="json"),
        )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["job_id", "attempt", "kind", "validator_hotkey"], name="one_receipt_per_kind"
            )
        ]
        ordering = ["-at"]


class Incident(models.Model):
    """Something a miner did wrong; recent incidents lower its routing weight and its score."""

    class Kind(models.TextChoices):
        INFRA_FAILURE = "infra_failure"  # the attempt failed through the miner's fault (crash, lost, timeout)
        BUSY_UNPROVEN = "busy_unproven"  # declined as busy without receipts to show for it
        BAD_READINESS = "bad_readiness"  # a streaming readiness that did not verify
        CROSSVAL_MISMATCH = "crossval_mismatch"  # a trusted miner's run of the job produced other outputs
        MALICIOUS_REPORT = "malicious_report"  # a client's report whose evidence verified

    miner_hotkey = models.CharField(db_index=True, **HOTKEY)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    job_id = models.CharField(max_length=64, blank=True, default="")
    at = models.FloatField(db_index=True)
    message = models.TextField(blank=True, default="")
    evidence = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.kind} by {self.miner_hotkey[:12]}"


class BlacklistEntry(models.Model):
    """A miner jobs are not routed to until ``until`` (or until an operator lifts it)."""

    miner_hotkey = models.CharField(db_index=True, **HOTKEY)
    reason = models.CharField(max_length=200)
    until = models.FloatField()
    created_at = models.FloatField()
    created_by = models.CharField(max_length=150, default="validator")  # "validator" or an operator's username
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.SET_NULL)
    lifted_at = models.FloatField(null=True, blank=True)
    lifted_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "blacklist entries"

    def active(self, now: float) -> bool:
        return self.lifted_at is None and self.until > now


class PublishedScores(models.Model):
    """A signed score sheet (protocol.scores.ScoreSheet) and whether the facilitator has it yet."""

    at = models.FloatField(db_index=True)
    sheet = models.JSONField()
    sent = models.BooleanField(default=False)

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "published scores"
