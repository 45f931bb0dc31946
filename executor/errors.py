"""The executor's errors (DESIGN.md §5, §6).

ExecutorError                 base of the executor's own errors
├── JobFailed                 the job's own fault: ``reason`` (a FailureReason) goes out in ``job.failed``
│   ├── RuntimeFailure        the job cannot run: no image, a command not found, a spec the runtime refuses
│   └── DataPlaneError        an input, output, log or artifact the job cannot have
├── EngineUnavailable         the Docker engine does not answer: the miner's fault (also a ``RuntimeError``)
├── GpuUnavailable            the executor's GPUs cannot be used (no device, one lost, no NVIDIA container
│                             runtime): the miner's fault, ``reason`` (an InfraFailureReason) in ``job.infra_failed``
└── TransferError             one try of a transfer went wrong; :mod:`executor.transfer` retries it or
    │                         turns it into a :class:`DataPlaneError`
    ├── HttpStatusError       a reply whose status is not 2xx (``status``, ``snippet``)
    ├── UrlRefused            a client URL whose host is, or resolves to, an address not public
    └── HostUnresolved        a host without an address (DNS failure; may be transient)

Errors of the wire (a frame, a signature, a lost connection) are :mod:`protocol.errors`'.
"""

from __future__ import annotations

from protocol.status import FailureReason, InfraFailureReason

__all__ = [
    "DataPlaneError",
    "EngineUnavailable",
    "ExecutorError",
    "GpuUnavailable",
    "HostUnresolved",
    "HttpStatusError",
    "JobFailed",
    "RuntimeFailure",
    "TransferError",
    "UrlRefused",
]


class ExecutorError(Exception):
    """Base class of the executor's own errors."""


class JobFailed(ExecutorError):
    """The job failed by its own fault; ``reason`` says how."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.reason.value}] {self.message!r}>"


class RuntimeFailure(JobFailed):
    """The job cannot run: ``reason`` is a :class:`FailureReason`."""


class DataPlaneError(JobFailed):
    """An input, output, log or artifact the job cannot have; ``reason`` says why."""


class EngineUnavailable(ExecutorError, RuntimeError):
    """The Docker engine does not answer: the miner's fault, not the job's."""


class GpuUnavailable(ExecutorError):
    """The executor's GPUs cannot be used: the miner's fault; ``reason`` goes out in ``job.infra_failed``."""

    def __init__(self, message: str, reason: InfraFailureReason = InfraFailureReason.EXECUTOR_START_FAILED) -> None:
        super().__init__(message)
        self.reason = reason


class TransferError(ExecutorError):
    """One try of a download or an upload failed."""


class HttpStatusError(TransferError):
    """A reply whose status is not 2xx; ``snippet`` is the start of its body."""

    def __init__(self, status: int, snippet: str = "") -> None:
        super().__init__(f"returned {status}" + (f": {snippet}" if snippet else ""))
        self.status = status
        self.snippet = snippet


class UrlRefused(TransferError):
    """The URL's host is, or resolves to, an address the executor will not connect to."""

    def __init__(self, message: str, *, host: str | None = None, address: str | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.address = address


class HostUnresolved(TransferError):
    """The URL's host has no address (DNS failure); may be transient."""
