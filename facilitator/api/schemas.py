"""Request and response bodies of the REST API."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, Field, GetJsonSchemaHandler, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue

from facilitator.links import FILENAME_PATTERN, MAX_FILENAME_LENGTH, check_filename
from protocol.spec import JobSpec

__all__ = ["CreateJobIn", "FileOut", "JobList", "JobOut", "Since", "UploadIn", "UploadOut"]

MAX_SINCE_S = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime holds
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _since(value: Any) -> Any:
    # Unix seconds within the schema's bounds (pydantic alone would take any number, and read a
    # large one as milliseconds); ISO 8601 text goes on to pydantic.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        seconds = float(value)
        if not 0 <= seconds <= MAX_SINCE_S:
            raise ValueError(f"Unix seconds must be between 0 and {MAX_SINCE_S}")
        return datetime.fromtimestamp(seconds, UTC)
    return value


#: ``?since=``: a date or a date and time (ISO 8601; without a zone, UTC), or Unix seconds
Since = Annotated[
    datetime,
    BeforeValidator(_since),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
                {"type": "number", "minimum": 0, "maximum": MAX_SINCE_S},
            ],
            "description": "only jobs created at or after it: ISO 8601 (without a zone, UTC), or Unix seconds",
        }
    ),
]


class _JobSpecSchema:
    """Documents a raw spec dict as a :class:`JobSpec`: the view keeps the dict exactly as the client
    signed it and parses it itself (``invalid_spec``), but the schema says what it must hold."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(JobSpec.__pydantic_core_schema__)


class CreateJobIn(Schema):
    job_id: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    spec: Annotated[dict[str, Any], _JobSpecSchema]
    signature: str = Field(
        description="the client's signature over {job_id, spec} (purpose job-spec), hex",
        # Checked by the signature's verification (400 bad_job_signature), stated here for tools.
        json_schema_extra={"pattern": "^[0-9a-fA-F]{128}$"},
    )


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
    # check_filename() enforces (its messages are the ones a client reads); the schema states it.
    filename: Annotated[str, AfterValidator(check_filename)] = Field(
        description="the object's file name: one path segment, at most 200 characters",
        json_schema_extra={"minLength": 1, "maxLength": MAX_FILENAME_LENGTH, "pattern": FILENAME_PATTERN},
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
