"""Runtimes by name: an alias or a full dotted path (:func:`protocol.backends.resolve_backend`)."""

from __future__ import annotations

from executor.runtimes.base import RunOutcome, Runtime, RuntimeFailure
from protocol.backends import resolve_backend

__all__ = ["RUNTIMES", "RunOutcome", "Runtime", "RuntimeFailure", "load_runtime"]

RUNTIMES = {
    "docker": "executor.runtimes.docker.DockerRuntime",
    "process": "executor.runtimes.process.ProcessRuntime",
}


def load_runtime(name: str) -> Runtime:
    """Instantiate the runtime called ``name`` (an alias or ``"package.module.Class"``).

    Raises:
        BackendError: (a ``ValueError``) an unknown alias, with a "did you mean" hint, a path that
            does not import, or a class that is no :class:`Runtime`.
    """
    return resolve_backend(name, RUNTIMES, Runtime, what="runtime")()
