"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from ninja import Schema
from pydantic import AfterValidator, Field

from facilitator.links import check_filename

__all__ = ["CreateJobIn", "FileOut", "JobList", "JobOut", "UploadIn", "UploadOut"]


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


class UploadIn(Schema):
    filename: Annotated[str, AfterValidator(check_filename)] = Field(
        description="the object's file name: one path segment, at most 200 characters"
    )


class UploadOut(Schema):
    key: str = Field(description="the object's key, for an object input of a job")
    url: str = Field(
        description="signed PUT URL, write-once (a second PUT is 409); relative URLs are on this facilitator"
    )
    headers: dict[str, str] = Field(description="headers to send with the PUT (S3 checks the write-once condition)")
    expires_at: datetime


class FileOut(Schema):
    path: str
    url: str | None = Field(description="signed GET URL (relative: on this facilitator); null for an empty log")
    sha256: str
    size: int
    expires_at: datetime | None
