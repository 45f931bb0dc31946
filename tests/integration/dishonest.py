"""Runtimes for dishonest and broken miners in the integrity tests (never used outside tests).

A miner runs them with ``GRID_EXECUTOR_RUNTIME=tests.integration.dishonest:WrongOutputRuntime``
(or ``CrashingRuntime``): real executor processes running real jobs, but misbehaving the way a
cheating or failing miner would.
"""

from __future__ import annotations

import os
from typing import Any

from executor.runtimes.base import JobDirs, RunOutcome
from executor.runtimes.process import ProcessRuntime
from protocol.spec import JobSpec

__all__ = ["CrashingRuntime", "WrongOutputRuntime"]


class WrongOutputRuntime(ProcessRuntime):
    """Runs the job, then alters what it wrote (stdout and every output file) before upload."""

    async def run(self, spec: JobSpec, dirs: JobDirs, env: dict[str, str], **options: Any) -> RunOutcome:
        outcome = await super().run(spec, dirs, env, **options)
        with dirs.stdout.open("ab") as stdout:
            stdout.write(b"tampered\n")
        for path in dirs.output.rglob("*"):
            if path.is_file() and not path.is_symlink():
                with path.open("ab") as fh:
                    fh.write(b"tampered\n")
        return outcome


class CrashingRuntime(ProcessRuntime):
    """The executor dies as soon as it starts a job (a broken miner): the job ends infra_failed."""

    async def run(self, spec: JobSpec, dirs: JobDirs, env: dict[str, str], **options: Any) -> RunOutcome:
        os._exit(70)
