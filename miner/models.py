"""What the miner keeps: the receipts it countersigned, served to any validator in pages (DESIGN.md §8)."""

from __future__ import annotations

from django.db import models

from protocol.receipts import ReceiptKind

__all__ = ["MinerReceipt"]


class MinerReceipt(models.Model):
    """One receipt both parties signed; its ``id`` is the cursor of the miner's receipt pages."""

    class Kind(models.TextChoices):
        STARTED = ReceiptKind.STARTED.value
        ACCEPTED = ReceiptKind.ACCEPTED.value
        FINISHED = ReceiptKind.FINISHED.value

    job_id = models.CharField(max_length=64)
    attempt = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    validator_hotkey = models.CharField(max_length=64)
    executor_class = models.CharField(max_length=64)
    at = models.FloatField()
    receipt = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["job_id", "attempt", "kind", "validator_hotkey"], name="miner_one_receipt_per_kind"
            )
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} receipt of {self.job_id} attempt {self.attempt} ({self.validator_hotkey[:12]}…)"
