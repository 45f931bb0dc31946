"""Runtimes by name: an alias table, full dotted paths also accepted (STYLE.md, executor/)."""

from __future__ import annotations

import difflib
import importlib

from executor.runtimes.base import RunOutcome, Runtime, RuntimeFailure

__all__ = ["RUNTIMES", "RunOutcome", "Runtime", "RuntimeFailure", "load_runtime"]

RUNTIMES = {
    "docker": "executor.runtimes.docker:DockerRuntime",
    "process": "executor.runtimes.process:ProcessRuntime",
}


def load_runtime(name: str) -> Runtime:
    """Instantiate the runtime called ``name`` (an alias or ``"module:Class"``).

    Raises:
        ValueError: unknown alias, with a "did you mean" hint.
    """
    target = RUNTIMES.get(name, name)
    if ":" not in target:
        hint = difflib.get_close_matches(name, RUNTIMES, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"unknown runtime {name!r} (known: {', '.join(sorted(RUNTIMES))}){suggestion}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls()
