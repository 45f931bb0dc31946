"""The control plane's tables: sessions and results (tasks follow)."""

from __future__ import annotations

from django.db import models

__all__ = ["ControlResult", "ControlSession"]


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


class ControlResult(models.Model):
    """An ArmoniK result: metadata first, data later (or inline), kept in the grid's object store.

    ``status`` holds ArmoniK's ``ResultStatus`` number; ``store_key`` names the object once there
    is data (``""`` before, and after the data is deleted); ``sha256`` and ``size`` are the
    store's own record of it.
    """

    id = models.CharField(primary_key=True, max_length=36)
    session = models.ForeignKey(ControlSession, on_delete=models.CASCADE, related_name="results")
    name = models.CharField(max_length=256)
    owner_task_id = models.CharField(max_length=36, blank=True, default="")
    created_by = models.CharField(max_length=36, blank=True, default="")  # the task that created it; "": the client
    status = models.PositiveSmallIntegerField()
    manual_deletion = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True)
    store_key = models.CharField(max_length=1024, blank=True, default="")
    sha256 = models.CharField(max_length=64, blank=True, default="")
    size = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"result {self.id} ({self.name}) of session {self.session_id}"
