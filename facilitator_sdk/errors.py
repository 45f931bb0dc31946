"""SDK errors.

GridError
├── ApiError              the facilitator refused a request (status, code, message, errors)
│   ├── AuthenticationError   401
│   ├── NotFoundError         404
│   ├── ConflictError         409
│   ├── InvalidRequestError   400 (field errors in ``errors``)
│   └── RateLimitedError      429, once the client's automatic retries are spent (``retry_after``)
├── ConnectionError       the facilitator could not be reached
│   └── StreamingConnectionError  a job's gateway unreachable or not the pinned certificate (also a StreamingError)
├── ChecksumError         a file's sha256 or size is not what was recorded (upload or download)
├── JobTimeoutError       ``wait`` ran out of time before the job ended
├── JobError              ``run`` saw the job end without completing (``job``, ``reason``)
├── StreamingError        talking to a streaming job directly (DESIGN.md §5)
│   ├── StreamingTrustError   the readiness is not signed by the miner, or the certificate is not the signed one
│   ├── ReplySignatureError   a reply without a valid seal: unsigned, tampered, unended (``code``, ``status``)
│   └── StreamBrokenError     the job broke off its reply; the seal says so (``error``, ``evidence``)

The three streaming checks are also the protocol's (``protocol.stream_caller`` raises them):
StreamingTrustError is an ``EndpointTrustError``, ReplySignatureError a ``ReplySealError`` and
StreamBrokenError a ``ReplyBrokenError`` (``protocol.errors``).
└── SessionEnded          the job ended a websocket session; its seal verified (``evidence``)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protocol.errors import EndpointTrustError, ReplyBrokenError, ReplySealError

if TYPE_CHECKING:
    from facilitator_sdk.job import Job
    from protocol.streaming import Evidence

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ChecksumError",
    "ConflictError",
    "ConnectionError",
    "GridError",
    "InvalidRequestError",
    "JobError",
    "JobTimeoutError",
    "NotFoundError",
    "RateLimitedError",
    "ReplySignatureError",
    "SessionEnded",
    "StreamBrokenError",
    "StreamingConnectionError",
    "StreamingError",
    "StreamingTrustError",
]


class GridError(Exception):
    pass


class ApiError(GridError):
    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.errors = status, code, message, errors or []


class AuthenticationError(ApiError):
    pass


class NotFoundError(ApiError):
    pass


class ConflictError(ApiError):
    pass


class InvalidRequestError(ApiError):
    pass


class RateLimitedError(ApiError):
    """429: this hotkey (or address) sent more requests than the facilitator allows.

    ``retry_after``: the seconds the server asked us to wait (its ``Retry-After``), ``None`` if it
    did not say. The clients retry by themselves first (``rate_limit_retries``), so this means
    the limit held through those retries, or asked for a longer wait than they will sleep.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, code, message, errors)
        self.retry_after = retry_after


class ConnectionError(GridError):
    pass


class ChecksumError(GridError):
    """What arrived is not what was recorded: ``expected_*`` from the record, ``actual_*`` as received.

    For an upload the record is what this client sent and ``actual_*`` what the store holds;
    ``actual_sha256`` is ``None`` when the transfer stopped early (more bytes than recorded).
    """

    def __init__(
        self,
        name: str,
        expected_sha256: str,
        expected_size: int,
        actual_sha256: str | None,
        actual_size: int,
        what: str = "download",
    ) -> None:
        self.name, self.what = name, what
        self.expected_sha256, self.expected_size = expected_sha256, expected_size
        self.actual_sha256, self.actual_size = actual_sha256, actual_size
        if actual_size != expected_size:
            detail = f"{actual_size} bytes, expected {expected_size}"
        else:
            detail = f"sha256 {actual_sha256}, expected {expected_sha256}"
        super().__init__(f"{what} of {name!r} does not match its record: {detail}")


class JobTimeoutError(GridError, TimeoutError):
    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.job_id} still {job.status} after {timeout:g}s")
        self.job = job


class JobError(GridError):
    """The job ended ``failed``, ``infra_failed``, ``rejected`` or ``cancelled``."""

    def __init__(self, job: Job) -> None:
        failure = job.failure or {}
        self.job = job
        self.status = job.status
        self.reason: str = failure.get("reason", job.status)
        self.stage: str | None = failure.get("stage")
        message = failure.get("message", "")
        stage = f" during {self.stage}" if self.stage else ""
        super().__init__(f"job {job.job_id} {job.status}{stage}: {self.reason}: {message}")


class StreamingError(GridError):
    pass


class StreamingTrustError(StreamingError, EndpointTrustError):
    """The miner did not vouch for this job's gateway: nothing is sent to it."""


class StreamingConnectionError(ConnectionError, StreamingError):
    """The gateway at ``address`` could not be reached, refused the connection, or presented
    another certificate than the pinned one; ``status`` when it refused a websocket upgrade."""

    def __init__(self, message: str, address: str, status: int | None = None) -> None:
        super().__init__(message)
        self.address, self.status = address, status


class ReplySignatureError(StreamingError, ReplySealError):
    """A reply the job's key did not seal as received.

    ``code``: ``unsigned`` (no seal at all; ``status`` is the reply's, often a gateway refusal),
    ``bad_signature``, ``digest_mismatch`` (the body is not what was sealed), ``request_mismatch``,
    ``status_mismatch``, ``no_seal`` (a stream or session ended without its seal),
    ``bad_framing`` or ``bad_message`` (the gateway broke the framing).
    Constructed as ``ReplySignatureError(message, code, status=None)``.
    """


class StreamBrokenError(StreamingError, ReplyBrokenError):
    """The job broke off mid-reply; the gateway sealed what was sent with ``complete=False``.

    ``evidence`` proves it (the seal verified); ``error`` is the seal's error text.
    Constructed as ``StreamBrokenError(error, evidence)``.
    """


class SessionEnded(GridError):
    """The job closed a websocket session; its seal verified and is in ``evidence``."""

    def __init__(self, evidence: Evidence) -> None:
        super().__init__(f"the job ended the session after {evidence.seal.reply_digest[:12]}…")
        self.evidence = evidence


_BY_STATUS = {401: AuthenticationError, 404: NotFoundError, 409: ConflictError, 400: InvalidRequestError}


def api_error(status: int, body: Any, retry_after: float | None = None) -> ApiError:
    body = body if isinstance(body, dict) else {}
    code, message, errors = str(body.get("code", "error")), str(body.get("message", "")), body.get("errors")
    if status == 429:
        return RateLimitedError(status, code, message, errors, retry_after=retry_after)
    return _BY_STATUS.get(status, ApiError)(status, code, message, errors)
