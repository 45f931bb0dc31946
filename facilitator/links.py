"""Where a job's data lives in the grid's object store, and the signed links a job travels with.

Keys (DESIGN.md §6)::

    uploads/<client hotkey>/<uuid4 hex>/<filename>   a client's upload (``POST /api/v1/uploads``)
    jobs/<job id>/outputs/<output path>              an object output of a job
    jobs/<job id>/logs/stdout, .../stderr            a job's whole stdout and stderr

A client may read what it uploaded and what its own jobs wrote: an object input must lie under
``uploads/<its hotkey>/`` or ``jobs/<one of its jobs>/`` (:func:`check_object_inputs`).

The executor never holds store credentials: :func:`links_for` signs one URL per object it may
touch (GET for each object input, PUT for each object output and for stdout and stderr), and
they travel beside the client's signed spec in the job's context (``JobContext.links`` in
``job.new`` / ``job.full``).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from facilitator.models import Job
from facilitator.storage import InvalidKey, ObjectStore, get_store, validate_key
from facilitator.storage.base import MAX_URL_EXPIRY_S
from protocol.messages import StoreLink, StoreLinks
from protocol.spec import JobSpec, ObjectInput, ObjectOutput, SpecError, parse_spec

__all__ = [
    "FILENAME_PATTERN",
    "LOG_STREAMS",
    "MAX_FILENAME_LENGTH",
    "InputError",
    "LinkPlan",
    "check_filename",
    "check_object_inputs",
    "link_expiry_s",
    "link_plan",
    "links_for",
    "log_key",
    "output_key",
    "owns_key",
    "upload_key",
]

LOG_STREAMS = ("stdout", "stderr")
MAX_FILENAME_LENGTH = 200
_NAME_CHAR = r"[^/\\\x00-\x1f\x7f]"
_NAME_START = r"[^/\\.\x00-\x1f\x7f]"
#: :func:`check_filename` as a JSON Schema pattern (with MAX_FILENAME_LENGTH), for the API's schema
FILENAME_PATTERN = rf"^(?:{_NAME_START}{_NAME_CHAR}*|\.{_NAME_START}{_NAME_CHAR}*|\.\.{_NAME_CHAR}+)$"
LINK_MARGIN_S = 15 * 60
DEFAULT_QUEUE_WAIT_S = 300.0  # the validator's GRID_QUEUE_TIMEOUT_S default
EXPIRY_STEP_S = 60  # expiries are rounded up to this: a job re-sent within a minute gets the same links
MAX_PLANS = 4096  # link plans kept in memory, the least recently used dropped first


class InputError(SpecError):
    """An object input the client may not use: not its own, missing, or not what it expected."""

    code = "invalid_input"


# -- keys ------------------------------------------------------------------------------------------


def check_filename(filename: str) -> str:
    """Accept a filename that is one path segment; raise ``ValueError`` saying why not."""
    if not filename:
        raise ValueError("cannot be empty")
    if len(filename) > MAX_FILENAME_LENGTH:
        raise ValueError(f"must be at most {MAX_FILENAME_LENGTH} characters")
    if "/" in filename or "\\" in filename:
        raise ValueError("must be a file name, without '/' or '\\'")
    if filename in (".", ".."):
        raise ValueError("cannot be '.' or '..'")
    if any(ord(char) < 32 or ord(char) == 127 for char in filename):
        raise ValueError("cannot contain control characters")
    return filename


def upload_key(client_hotkey: str, filename: str) -> str:
    """A fresh key for one upload of ``client_hotkey`` (``filename`` is checked)."""
    return f"uploads/{client_hotkey}/{uuid.uuid4().hex}/{check_filename(filename)}"


def output_key(job_id: object, path: str) -> str:
    return f"jobs/{job_id}/outputs/{path}"


def log_key(job_id: object, stream: str) -> str:
    if stream not in LOG_STREAMS:
        raise ValueError(f"logs are {' and '.join(LOG_STREAMS)}, not {stream!r}")
    return f"jobs/{job_id}/logs/{stream}"


def owns_key(client_hotkey: str, key: str) -> bool:
    """Whether ``key`` lies in the client's part of the store (its uploads, its jobs' files)."""
    parts = key.split("/")
    if len(parts) < 3 or any(part in ("", ".", "..") for part in parts):
        return False
    if parts[0] == "uploads":
        return parts[1] == client_hotkey
    if parts[0] == "jobs":
        try:
            job_id = uuid.UUID(parts[1])
        except ValueError:
            return False
        return str(job_id) == parts[1] and Job.objects.filter(id=job_id, client_hotkey=client_hotkey).exists()
    return False


# -- object inputs ---------------------------------------------------------------------------------


def check_object_inputs(client_hotkey: str, spec: JobSpec, store: ObjectStore | None = None) -> None:
    """Refuse object inputs that are not the client's or not in the store.

    An object of someone else and a missing object get the same answer, so a client learns
    nothing about keys that are not its own (and the store is asked only about its own). The
    ``sha256`` an input names is checked by the executor as it fetches the object: here it could
    cost reading the whole object (an S3 object uploaded through a signed URL has no digest yet).

    Raises:
        InputError: one entry per bad input, with its field ``inputs.<index>.key``.
    """
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(spec.inputs):
        if not isinstance(item, ObjectInput):
            continue
        try:
            validate_key(item.key)
        except InvalidKey:
            message: str | None = f"input {item.path!r}: {item.key!r} is not a valid object key"
        else:
            owned = owns_key(client_hotkey, item.key) and (store or get_store()).exists(item.key)
            message = None if owned else f"input {item.path!r}: no object {item.key!r} of yours in the store"
        if message is not None:
            errors.append({"field": f"inputs.{index}.key", "message": message})
    if errors:
        summary = "; ".join(error["message"] for error in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise InputError(f"invalid input: {summary}{more}", errors)


# -- links -----------------------------------------------------------------------------------------


def link_expiry_s(spec: JobSpec) -> int:
    """How long a job's links must live: queue wait + every stage × attempts + a margin, capped."""
    return _expiry_s(sum(spec.timing.model_dump().values()), spec.max_attempts)


def _expiry_s(stages_s: float, max_attempts: int) -> int:
    queue_wait = float(getattr(settings, "FACILITATOR_QUEUE_WAIT_S", DEFAULT_QUEUE_WAIT_S))
    return int(min(math.ceil(queue_wait + stages_s * max_attempts + LINK_MARGIN_S), MAX_URL_EXPIRY_S))


@dataclass(frozen=True)
class LinkPlan:
    """What a job's links are made from: the little of its spec that :func:`links_for` reads."""

    inputs: tuple[tuple[str, str], ...]  # (path, store key) of each object input
    outputs: tuple[str, ...]  # the path of each object output
    stages_s: float  # the sum of the spec's stage limits
    max_attempts: int

    @classmethod
    def of(cls, spec: JobSpec) -> LinkPlan:
        return cls(
            inputs=tuple((item.path, item.key) for item in spec.inputs if isinstance(item, ObjectInput)),
            outputs=tuple(item.path for item in spec.outputs if isinstance(item, ObjectOutput)),
            stages_s=sum(spec.timing.model_dump().values()),
            max_attempts=spec.max_attempts,
        )


# The spec is parsed once, where it enters (create_job); a job is redelivered to validators
# again and again, so its plan is kept rather than parsed anew each time. Keyed by the job's id
# and the client's signature: a stored job's spec never changes, and the signature binds it.
_plans: OrderedDict[tuple[str, str], LinkPlan] = OrderedDict()
_plans_lock = threading.Lock()


def link_plan(job: Job, spec: JobSpec | None = None) -> LinkPlan:
    """The link plan of ``job``: kept from its first use, else made from ``spec`` (already parsed)
    or, failing both, from the job's stored spec parsed once here."""
    key = (str(job.pk), job.client_signature)
    with _plans_lock:
        plan = _plans.get(key)
        if plan is not None:
            _plans.move_to_end(key)
            return plan
    plan = LinkPlan.of(spec if spec is not None else parse_spec(job.spec))
    with _plans_lock:
        _plans[key] = plan
        while len(_plans) > MAX_PLANS:
            _plans.popitem(last=False)
    return plan


def links_for(job: Job, spec: JobSpec | None = None, store: ObjectStore | None = None) -> StoreLinks:
    """The signed store URLs of ``job``: GET each object input, PUT each object output and both logs.

    Only signing (HMAC or an S3 pre-signature): no store round trip, cheap enough for every dispatch;
    the spec is not parsed again (:func:`link_plan`).
    """
    plan = link_plan(job, spec)
    store = store or get_store()
    now = int(time.time())
    expires_s = _expiry_s(plan.stages_s, plan.max_attempts)
    # Rounded up, so the same job signed twice within a minute carries the very same links.
    expires_at = min(math.ceil((now + expires_s) / EXPIRY_STEP_S) * EXPIRY_STEP_S, now + MAX_URL_EXPIRY_S)
    expires_s = expires_at - now

    def link(key: str, method: str) -> StoreLink:
        # A job's PUTs may replace what they wrote: the executor retries a PUT whose answer it
        # lost, and a retried attempt writes the same keys again.
        return StoreLink(key=key, url=store.signed_url(key, method, expires_s, overwrite=True))

    return StoreLinks(
        inputs={path: link(key, "GET") for path, key in plan.inputs},
        outputs={path: link(output_key(job.id, path), "PUT") for path in plan.outputs},
        stdout=link(log_key(job.id, "stdout"), "PUT"),
        stderr=link(log_key(job.id, "stderr"), "PUT"),
    )
