"""The validator's record of every job it took, so a restart can finish what it started."""

from __future__ import annotations

from django.db import models

from protocol.status import JobStatus

__all__ = ["ValidatorJob"]


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
    failure = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"job {self.job_id} ({self.status})"
