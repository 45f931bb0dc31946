"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Schema
from pydantic import Field

__all__ = ["CreateJobIn", "JobList", "JobOut"]


class CreateJobIn(Schema):
    job_id: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    spec: dict[str, Any]
    signature: str = Field(description="the client's signature over {job_id, spec} (purpose job-spec)")


class JobOut(Schema):
    job_id: str
    status: str
    attempt: int
    client_hotkey: str
    validator: str | None
    miner: str | None
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    result: dict[str, Any] | None
    failure: dict[str, Any] | None
    history: list[dict[str, Any]] = Field(default_factory=list)


class JobList(Schema):
    jobs: list[JobOut]
    count: int
