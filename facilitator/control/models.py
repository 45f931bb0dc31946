"""The control plane's tables: sessions, results, tasks, their dependencies, and each session's events."""

from __future__ import annotations

from django.db import models

__all__ = ["ControlDependency", "ControlEvent", "ControlResult", "ControlSession", "ControlSubmission", "ControlTask"]


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
    event_seq = models.BigIntegerField(default=0)  # the sequence number of the session's newest event

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
    imported = models.BooleanField(default=False)  # its object is the client's (ImportResultsData): never deleted here

    def __str__(self) -> str:
        return f"result {self.id} ({self.name}) of session {self.session_id}"


class ControlSubmission(models.Model):
    """A client's ``SubmitTasks`` call as it was signed: the proof, carried to the executors, that
    the client asked for each task it created (``signature``: the call's signature entries; ``body``:
    the request's deterministic bytes, which they sign)."""

    session = models.ForeignKey(ControlSession, on_delete=models.CASCADE, related_name="submissions")
    signature = models.JSONField()
    body = models.BinaryField()

    def __str__(self) -> str:
        return f"submission {self.pk} to session {self.session_id}"


class ControlTask(models.Model):
    """An ArmoniK task: a payload, data dependencies and expected outputs, all results of its session.

    ``remaining`` counts the payload and dependencies not completed yet (each counted once); whoever
    completes a result decrements it in the same transaction, and the task is queued (submitted)
    when it reaches 0. ``options`` holds the task's ``TaskOptions`` once merged over the session's.
    """

    id = models.CharField(primary_key=True, max_length=36)
    session = models.ForeignKey(ControlSession, on_delete=models.CASCADE, related_name="tasks")
    status = models.PositiveSmallIntegerField()
    status_message = models.CharField(max_length=1000, blank=True, default="")
    options = models.BinaryField()
    partition_id = models.CharField(max_length=128)
    priority = models.IntegerField(default=0)
    payload_id = models.CharField(max_length=36)
    data_dependencies = models.JSONField(default=list)
    expected_output_ids = models.JSONField(default=list)
    parent_task_ids = models.JSONField(default=list)
    retry_of_ids = models.JSONField(default=list)
    initial_task_id = models.CharField(max_length=36)
    created_by = models.CharField(max_length=36, blank=True, default="")  # "": the client
    remaining = models.IntegerField(default=0)
    job_id = models.CharField(max_length=36, blank=True, default="", db_index=True)  # the batch job running it
    # the client's signed call that asked for it (its entry ``creation``); none for a child task
    submission = models.ForeignKey(ControlSubmission, null=True, on_delete=models.SET_NULL, related_name="tasks")
    creation = models.PositiveIntegerField(default=0)
    owner_pod_id = models.CharField(max_length=128, blank=True, default="")
    pod_hostname = models.CharField(max_length=256, blank=True, default="")
    output_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True)
    received_at = models.DateTimeField(null=True)
    acquired_at = models.DateTimeField(null=True)
    fetched_at = models.DateTimeField(null=True)
    started_at = models.DateTimeField(null=True)
    processed_at = models.DateTimeField(null=True)
    ended_at = models.DateTimeField(null=True)
    pod_ttl = models.DateTimeField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["session", "status"], name="control_task_session"),
            models.Index(fields=["status", "partition_id", "priority"], name="control_task_queue"),
        ]

    def __str__(self) -> str:
        return f"task {self.id} of session {self.session_id}"


class ControlDependency(models.Model):
    """Task ``task`` waits on result ``result`` (its payload or a data dependency): readiness's index."""

    task = models.ForeignKey(ControlTask, on_delete=models.CASCADE, related_name="waits_on")
    result = models.ForeignKey(ControlResult, on_delete=models.CASCADE, related_name="awaited_by")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["result", "task"], name="control_dependency_once")]

    def __str__(self) -> str:
        return f"{self.task_id} waits on {self.result_id}"


class ControlEvent(models.Model):
    """One event of a session, numbered: ``seq`` runs 1, 2, 3 … in the session, with no gap.

    ``message`` is the ``EventSubscriptionResponse`` as sent; ``task_id`` / ``result_id`` name what
    it is about, so that a subscriber's task and result filters can be applied when it is sent.
    """

    session = models.ForeignKey(ControlSession, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    kind = models.PositiveSmallIntegerField()  # EventsEnum
    task_id = models.CharField(max_length=36, blank=True, default="")
    result_id = models.CharField(max_length=36, blank=True, default="")
    message = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "seq"], name="control_event_seq_once")]

    def __str__(self) -> str:
        return f"event {self.seq} of session {self.session_id}"
