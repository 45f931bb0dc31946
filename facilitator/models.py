"""Jobs with their full status history, validators' presence, seen request nonces, validators'
score sheets and clients' malicious-miner reports."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models

from facilitator.control.models import ControlResult, ControlSession  # noqa: F401  (the control plane's tables)
from facilitator.registry.models import Neuron, RegistryVersion  # noqa: F401  (the registry's tables)
from protocol.status import JobStatus

__all__ = ["Job", "JobEvent", "MaliciousReportRecord", "RequestNonce", "ValidatorPresence", "ValidatorScores"]

STATUS_CHOICES = [(status.value, status.value) for status in JobStatus]


class JobQuerySet(models.QuerySet):
    def waiting_for(self, validator_hotkey: str) -> JobQuerySet:
        """Jobs this validator should receive: assigned to it or to nobody, not yet acknowledged."""
        return self.filter(
            models.Q(validator_hotkey=validator_hotkey) | models.Q(validator_hotkey=""),
            status=JobStatus.SENT,
            delivered_at__isnull=True,
        )


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    client_hotkey = models.CharField(max_length=64, db_index=True)
    spec = models.JSONField()
    client_signature = models.CharField(max_length=128)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=JobStatus.SENT, db_index=True)
    attempt = models.PositiveIntegerField(default=1)
    validator_hotkey = models.CharField(max_length=64, blank=True, default="")
    miner_hotkey = models.CharField(max_length=64, blank=True, default="")
    dispatched_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    failure = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"job {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return JobStatus(self.status).is_terminal


class JobEvent(models.Model):
    """One status change; the payload is the ``job.status`` message exactly as pushed to clients."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=16, choices=STATUS_CHOICES)
    attempt = models.PositiveIntegerField()
    payload = models.JSONField()
    at = models.FloatField()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["job", "attempt", "status"], name="one_event_per_status")]

    def __str__(self) -> str:
        return f"{self.job_id} attempt {self.attempt}: {self.status}"

    def as_dict(self) -> dict[str, Any]:
        return self.payload


class RequestNonce(models.Model):
    """Nonces of signed requests seen within the freshness window; a repeat is a replay."""

    hotkey = models.CharField(max_length=64)
    nonce = models.CharField(max_length=64)
    seen_at = models.FloatField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hotkey", "nonce"], name="nonce_once")]

    def __str__(self) -> str:
        return f"{self.hotkey[:12]}…/{self.nonce}"


class ValidatorPresence(models.Model):
    """A validator connected right now, and the channel that reaches its connection."""

    hotkey = models.CharField(max_length=64, unique=True)
    channel_name = models.CharField(max_length=255)
    connected_at = models.DateTimeField(auto_now=True)
    # what its miners offer, as its last ``capacity`` said: class -> {total, free, spec}
    classes = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"validator {self.hotkey[:12]}…"


class ValidatorScores(models.Model):
    """The newest signed score sheet (protocol.scores.ScoreSheet) each validator published."""

    validator_hotkey = models.CharField(max_length=64, unique=True)
    at = models.FloatField()
    sheet = models.JSONField()
    received_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["validator_hotkey"]

    def __str__(self) -> str:
        return f"scores of {self.validator_hotkey[:12]}… at {self.at}"


class MaliciousReportRecord(models.Model):
    """A client's malicious-miner report, forwarded to the job's validator, and its outcome."""

    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        REFUSED = "refused"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="reports")
    client_hotkey = models.CharField(max_length=64, db_index=True)
    validator_hotkey = models.CharField(max_length=64, db_index=True)
    report = models.JSONField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING, db_index=True)
    reason = models.CharField(max_length=64, blank=True, default="")
    message = models.CharField(max_length=1000, blank=True, default="")
    miner_hotkey = models.CharField(max_length=64, blank=True, default="")
    blacklisted_until = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    forwarded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"report {self.id} on job {self.job_id} ({self.status})"
