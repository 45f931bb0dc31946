"""The control plane's tables: sessions (results and tasks follow)."""

from __future__ import annotations

from django.db import models

__all__ = ["ControlSession"]


class ControlSession(models.Model):
    """An ArmoniK session of one client.

    ``status`` holds ArmoniK's ``SessionStatus`` number; ``options`` the default ``TaskOptions``
    exactly as the client sent them (serialized), so nothing of them is lost or reinterpreted.
    """

    id = models.CharField(primary_key=True, max_length=36)
    client_hotkey = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField()
    client_submission = models.BooleanField(default=True)
    worker_submission = models.BooleanField(default=True)
    partition_ids = models.JSONField(default=list)
    options = models.BinaryField()
    created_at = models.DateTimeField()
    cancelled_at = models.DateTimeField(null=True)
    closed_at = models.DateTimeField(null=True)
    purged_at = models.DateTimeField(null=True)
    deleted_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [models.Index(fields=["client_hotkey", "created_at"], name="control_session_client")]

    def __str__(self) -> str:
        return f"session {self.id} of {self.client_hotkey[:12]}…"
