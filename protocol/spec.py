"""The job spec a client signs (DESIGN.md §4).

The client signs ``{"job_id": ..., "spec": <spec as the client serialised it>}``. Every hop keeps
and forwards the spec exactly as received (a plain dict) and verifies the signature over it, so
no hop can alter what the client asked for, and a newer party adding a default field cannot
break an older client's signature. :class:`JobSpec` validates that dict; it is never re-dumped
for verification.
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from protocol.errors import SpecError
from protocol.keys import Keypair, verify_payload

__all__ = [
    "BATCH_DATA_BYTES",
    "INLINE_RESULT_BYTES",
    "InlineInput",
    "InlineResult",
    "InputSpec",
    "JobSpec",
    "JobTiming",
    "ObjectInput",
    "ObjectOutput",
    "OutputSpec",
    "ResourceLimits",
    "SpecError",
    "SubmissionProof",
    "TaskAssignment",
    "TaskBatch",
    "UrlInput",
    "UrlOutput",
    "new_job_id",
    "parse_spec",
    "sign_job",
    "verify_job",
]

JOB_PURPOSE = "job-spec"
MAX_COMMAND_ARGS = 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobTiming(_Strict):
    """Time limit of each stage, in seconds."""

    reservation: float = Field(5.0, gt=0, le=600)
    executor_start: float = Field(10.0, gt=0, le=3600)
    download: float = Field(60.0, gt=0, le=3600)
    execution: float = Field(60.0, gt=0, le=86400)
    upload: float = Field(60.0, gt=0, le=3600)
    streaming_start: float = Field(10.0, gt=0, le=600)


class ResourceLimits(_Strict):
    cpu: float = Field(1.0, gt=0, le=256, description="CPU cores")
    memory_mb: int = Field(512, ge=16, le=1024 * 1024)
    pids: int = Field(64, ge=1, le=65536)
    # Part of the GPU model's name the job needs ("H100", case-insensitive): it goes only to an
    # executor whose class names such a GPU (docs/gpu.md). Unset: any GPU of its class.
    gpu_model: str | None = Field(None, min_length=1, max_length=128)


def _relative_path(value: str) -> str:
    parts = value.split("/")
    if value.startswith("/") or any(part in ("", ".", "..") for part in parts) or "\x00" in value:
        raise ValueError("must be a relative path without '.', '..' or empty parts")
    return value


def _http_url(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
        raise ValueError("must be an http:// or https:// URL with a host")
    if any(ord(char) < 33 or ord(char) == 127 for char in value):
        raise ValueError("cannot contain spaces or control characters")
    return value


# The validators above as JSON Schema patterns, for the API's schema (the validators' messages
# are what a client reads; tests/protocol/test_spec.py keeps the two in agreement).
_SEGMENT = r"(?:[^/\x00.][^/\x00]*|\.[^/\x00.][^/\x00]*|\.\.[^/\x00]+)"  # not "", "." or ".."
RELATIVE_PATH_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
HTTP_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/\x00-\x20\x7f][^\x00-\x20\x7f]*$"
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
NO_NUL_PATTERN = r"^[^\x00]*$"

RelativePath = Annotated[
    str,
    Field(min_length=1, max_length=255, json_schema_extra={"pattern": RELATIVE_PATH_PATTERN}),
    AfterValidator(_relative_path),
]
HttpUrl = Annotated[
    str, Field(max_length=8192, json_schema_extra={"pattern": HTTP_URL_PATTERN}), AfterValidator(_http_url)
]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
NoNul = Annotated[str, Field(json_schema_extra={"pattern": NO_NUL_PATTERN})]


def _kind_required(schema: dict[str, Any]) -> None:
    # ``kind`` tells the variants apart on the wire (parse_spec() needs it); its default is for
    # building specs in Python.
    schema["required"] = ["kind", *schema.get("required", [])]


def _url_output_schema(schema: dict[str, Any]) -> None:
    _kind_required(schema)
    # Form fields go with POST only (UrlOutput's validator), said in the schema's own terms.
    schema["anyOf"] = [
        {"properties": {"method": {"const": "POST"}}, "required": ["method"]},
        {"properties": {"fields": {"maxProperties": 0}}},
    ]


class InlineInput(_Strict):
    """A small file written into the job's input directory."""

    model_config = ConfigDict(json_schema_extra=_kind_required)

    kind: Literal["inline"] = "inline"
    path: RelativePath
    content_b64: str = Field(max_length=1_400_000, json_schema_extra={"pattern": BASE64_PATTERN})

    @field_validator("content_b64")
    @classmethod
    def _base64(cls, value: str) -> str:
        # The pattern first: Python's decoder also takes surplus padding ("0000="), which the schema
        # (and other languages' decoders) do not.
        if re.fullmatch(BASE64_PATTERN, value) is None:
            raise ValueError("is not valid base64")
        try:
            base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise ValueError("is not valid base64") from exc
        return value

    @classmethod
    def from_bytes(cls, path: str, data: bytes) -> InlineInput:
        return cls(path=path, content_b64=base64.b64encode(data).decode())


class UrlInput(_Strict):
    """A file fetched over HTTP(S); with ``unpack``, a zip extracted into the directory ``path``.

    The executor refuses URLs to private or loopback addresses unless its miner allows them,
    retries failed downloads with backoff, and checks ``sha256`` (of the downloaded bytes) when given.
    """

    model_config = ConfigDict(json_schema_extra=_kind_required)

    kind: Literal["url"] = "url"
    path: RelativePath
    url: HttpUrl
    sha256: Sha256 | None = None
    unpack: bool = False


class ObjectInput(_Strict):
    """An object of the grid's store (see ``client.upload()``), fetched like a URL input.

    The facilitator checks that the object belongs to the client and hands the executor a
    signed URL for it.
    """

    model_config = ConfigDict(json_schema_extra=_kind_required)

    kind: Literal["object"] = "object"
    path: RelativePath
    key: str = Field(min_length=1, max_length=1024)
    sha256: Sha256 | None = None
    unpack: bool = False


InputSpec = Annotated[InlineInput | UrlInput | ObjectInput, Field(discriminator="kind")]


class ObjectOutput(_Strict):
    """The file ``path`` of the output directory becomes an object of the grid's store."""

    model_config = ConfigDict(json_schema_extra=_kind_required)

    kind: Literal["object"] = "object"
    path: RelativePath


class UrlOutput(_Strict):
    """The file ``path`` of the output directory is sent to a pre-signed URL the client made.

    ``PUT`` sends the file as the body; ``POST`` sends a multipart form with ``fields`` first
    and the file last under ``file_field`` (the shape of S3's pre-signed POST).
    """

    model_config = ConfigDict(json_schema_extra=_url_output_schema)

    kind: Literal["url"] = "url"
    path: RelativePath
    url: HttpUrl
    method: Literal["PUT", "POST"] = "PUT"
    fields: dict[Annotated[str, Field(max_length=255)], Annotated[str, Field(max_length=8192)]] = Field(
        default_factory=dict, max_length=64
    )
    file_field: str = Field("file", min_length=1, max_length=255)

    @model_validator(mode="after")
    def _fields_only_for_post(self) -> UrlOutput:
        if self.fields and self.method != "POST":
            raise ValueError("form fields go with method POST only")
        return self


OutputSpec = Annotated[ObjectOutput | UrlOutput, Field(discriminator="kind")]


_RESULT_ID = Field(min_length=1, max_length=36, pattern=r"^[0-9A-Za-z-]+$")


class TaskAssignment(_Strict):
    """One task of a control-plane job: its ids, its options (``TaskOptions``, serialized, base64), and
    what proves who asked for it: the client's signed ``SubmitTasks`` call (``submission``, its entry
    ``creation``), or, for a child, the parent task that submitted it (``created_by``)."""

    task_id: str = _RESULT_ID
    payload_id: str = _RESULT_ID
    data_dependencies: list[Annotated[str, _RESULT_ID]] = Field(default_factory=list, max_length=10_000)
    expected_output_ids: list[Annotated[str, _RESULT_ID]] = Field(default_factory=list, max_length=10_000)
    options: str = Field("", max_length=1_000_000)
    submission: str | None = Field(None, max_length=64)
    creation: int = Field(0, ge=0, le=10_000)
    created_by: str = Field("", max_length=36)


class SubmissionProof(_Strict):
    """A client's ``SubmitTasks`` call as it was signed: the signature entries and the request's bytes."""

    signature: dict[str, str] = Field(max_length=8)
    body_b64: str = Field(max_length=16_000_000)


INLINE_RESULT_BYTES = 64 * 1024  # a result this small travels inside a message, not through a store URL
BATCH_DATA_BYTES = 4 * 1024 * 1024  # at most this much inline input data in one batch


class InlineResult(_Strict):
    """A small completed result carried in the batch, so the executor needs no call to fetch it."""

    sha256: Sha256
    data_b64: str = Field(max_length=(INLINE_RESULT_BYTES * 4) // 3 + 4)


class TaskBatch(_Strict):
    """The tasks a control-plane job runs, one after another, through one worker (docs/control-plane.md).

    Only the facilitator makes such jobs (signing them itself); a client's job with ``tasks`` is refused.
    ``client_hotkey`` is the session's client: every submission must be signed by it.
    """

    session_id: str = _RESULT_ID
    client_hotkey: str = Field("", pattern=r"^([0-9a-f]{64})?$")
    tasks: list[TaskAssignment] = Field(min_length=1, max_length=1000)
    submissions: dict[str, SubmissionProof] = Field(default_factory=dict, max_length=1000)
    # Payloads and dependencies of the tasks, by result id, where small (BATCH_DATA_BYTES in all).
    data: dict[Annotated[str, _RESULT_ID], InlineResult] = Field(default_factory=dict, max_length=20_000)


class JobSpec(_Strict):
    """What to run, where, and within which limits.

    Beyond what this schema states: no two inputs share a path, nor lies one inside another (a
    file); no two outputs share a path.
    """

    # A streaming job carries its streaming_public_key, and only a streaming job does (the
    # validator below and parse_spec()), said in the schema's own terms.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {"streaming": {"const": True}, "streaming_public_key": {"type": "string"}},
                    "required": ["streaming", "streaming_public_key"],
                },
                {"properties": {"streaming": {"const": False}, "streaming_public_key": {"type": "null"}}},
            ]
        }
    )

    executor_class: str = Field("cpu.small", min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    image: str | None = Field(None, max_length=255, description="docker image (docker runtime only)")
    command: list[Annotated[NoNul, Field(max_length=65536)]] = Field(min_length=1, max_length=MAX_COMMAND_ARGS)
    env: dict[
        Annotated[
            str,
            Field(
                pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                max_length=255,
                # GRID_* and PORT are the grid's own (the validator below)
                json_schema_extra={"not": {"anyOf": [{"pattern": "^GRID_"}, {"const": "PORT"}]}},
            ),
        ],
        NoNul,
    ] = Field(
        default_factory=dict,
        max_length=256,
        # pydantic states the name pattern as patternProperties: other names are not allowed either
        json_schema_extra={"additionalProperties": False},
    )
    inputs: list[InputSpec] = Field(default_factory=list, max_length=1000)
    outputs: list[OutputSpec] = Field(default_factory=list, max_length=1000)
    artifacts_dir: RelativePath | None = Field(
        None, description="a directory under the output directory whose small files come back inline"
    )
    timing: JobTiming = Field(default_factory=JobTiming)
    limits: ResourceLimits = Field(default_factory=ResourceLimits)
    streaming: bool = False
    streaming_public_key: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="the client's per-job key that signs every streaming request"
    )
    on_trusted_miner: bool = False
    miner: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="run only on this miner (its hotkey): the client's pin"
    )
    max_attempts: int = Field(2, ge=1, le=10)
    # A control-plane job's tasks: the facilitator's jobs only, so not in the clients' schema.
    tasks: SkipJsonSchema[TaskBatch | None] = None

    @field_validator("command")
    @classmethod
    def _no_nul_in_command(cls, value: list[str]) -> list[str]:
        if any("\x00" in arg for arg in value):
            raise ValueError("arguments cannot contain NUL bytes")
        return value

    @field_validator("inputs")
    @classmethod
    def _inputs_do_not_collide(cls, value: list[InlineInput | UrlInput | ObjectInput]) -> list:
        paths = [item.path for item in value]
        seen = set(paths)
        if len(seen) != len(paths):
            raise ValueError("two inputs have the same path")
        for path in paths:
            parts = path.split("/")
            for depth in range(1, len(parts)):
                if "/".join(parts[:depth]) in seen:
                    raise ValueError(f"input {path!r} is inside input {'/'.join(parts[:depth])!r}, which is a file")
        return value

    @model_validator(mode="after")
    def _streaming_key_only_for_streaming(self) -> JobSpec:
        # A streaming spec may be built without its key: the SDK adds a fresh one as it signs the
        # job, and parse_spec() (what every hop runs) refuses a streaming job sent without one.
        if self.streaming_public_key is not None and not self.streaming:
            raise ValueError("streaming_public_key is for streaming jobs only")
        return self

    @field_validator("outputs")
    @classmethod
    def _outputs_are_distinct(cls, value: list[ObjectOutput | UrlOutput]) -> list:
        paths = [item.path for item in value]
        if len(set(paths)) != len(paths):
            raise ValueError("two outputs have the same path")
        return value

    @field_validator("env")
    @classmethod
    def _no_reserved_env(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(name for name in value if name.startswith("GRID_") or name == "PORT")
        if reserved:
            raise ValueError(f"reserved variable names: {', '.join(reserved)}")
        if any("\x00" in item for item in value.values()):
            raise ValueError("values cannot contain NUL bytes")
        return value

    def to_wire(self) -> dict[str, Any]:
        """The dict a client signs and sends: only what differs from the defaults."""
        wire = self.model_dump(mode="json", exclude_defaults=True)
        # Each input and output keeps its ``kind``: it is the discriminator, default or not.
        for name in ("inputs", "outputs"):
            items = getattr(self, name)
            if items:
                wire[name] = [
                    {"kind": item.kind, **item.model_dump(mode="json", exclude_defaults=True)} for item in items
                ]
        return wire


def parse_spec(raw: Any) -> JobSpec:
    """Validate a spec dict; raise :class:`SpecError` listing every field error."""
    if not isinstance(raw, dict):
        raise SpecError("spec must be a JSON object")
    try:
        spec = JobSpec.model_validate(raw)
    except RecursionError:
        raise SpecError("spec is nested too deeply") from None
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]) or "spec", "message": err["msg"]} for err in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        raise SpecError(f"invalid spec: {summary}", errors) from None
    if spec.streaming and spec.streaming_public_key is None:
        message = "a streaming job needs streaming_public_key (the SDK makes one per job)"
        raise SpecError(
            f"invalid spec: streaming_public_key: {message}", [{"field": "streaming_public_key", "message": message}]
        )
    return spec


def _job_payload(job_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": job_id, "spec": spec}


def sign_job(keypair: Keypair, job_id: str, spec: dict[str, Any]) -> str:
    """The client's signature over a job id and its spec dict."""
    return keypair.sign(JOB_PURPOSE, _job_payload(job_id, spec))


def verify_job(client_hotkey: str, job_id: str, spec: dict[str, Any], signature: str) -> None:
    """Raise :class:`~protocol.errors.SignatureError` unless the client signed exactly this job."""
    verify_payload(client_hotkey, JOB_PURPOSE, _job_payload(job_id, spec), signature)


def new_job_id() -> str:
    return str(uuid.uuid4())
