"""How the ``grid`` command fails: one line on stderr saying what to do, and a documented exit code.

Every command runs through :func:`run_command`: a :class:`CliError` or an SDK error becomes
``error: …`` and its exit code; anything else too, unless ``GRID_DEBUG=1`` asks for the traceback.
"""

from __future__ import annotations

import argparse
import enum
import os
import sys
from collections.abc import Callable

__all__ = ["EXIT_CODES_HELP", "CliError", "ExitCode", "run_command"]


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1  # refused by the grid, or the job did not complete
    USAGE = 2  # what argparse uses too
    UNREACHABLE = 3
    NOT_FOUND = 4
    TIMEOUT = 5
    INTERRUPTED = 130  # 128 + SIGINT, as shells report it


EXIT_CODES_HELP = """\
exit codes:
  0    success (for `job run`: the job completed and its command exited 0)
  N    `job run`: the job's command exited with N (1..255)
  1    the grid refused the request, or the job failed, was cancelled or rejected
  2    usage error: a bad argument or option
  3    no grid to talk to: none running in $GRID_HOME, or the facilitator does not answer
  4    no such job, file or key
  5    timed out waiting for the job
  130  interrupted (Ctrl-C)

Errors are one line on stderr; GRID_DEBUG=1 prints the traceback of an unexpected one."""


class CliError(Exception):
    """A mistake or a missing piece, said in one line with what to do about it."""

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def _sdk_error(exc: Exception) -> tuple[str, ExitCode] | None:
    """An SDK error as a line and an exit code; ``None`` if ``exc`` is not one."""
    from facilitator_sdk import errors
    from protocol.errors import SpecError

    if isinstance(exc, errors.ConnectionError):
        return f"{exc}: is the grid running? (`grid up`, or --facilitator URL)", ExitCode.UNREACHABLE
    if isinstance(exc, errors.NotFoundError):
        return f"{exc.message}: check the id (`grid job list`)", ExitCode.NOT_FOUND
    if isinstance(exc, errors.AuthenticationError):
        return f"{exc.message}: the facilitator refused your key; is this machine's clock right?", ExitCode.ERROR
    if isinstance(exc, errors.RateLimitedError):
        wait = f"in {exc.retry_after:.0f}s" if exc.retry_after is not None else "later"
        return f"{exc.message}: too many requests, try again {wait}", ExitCode.ERROR
    if isinstance(exc, errors.ApiError):
        fields = "; ".join(f"{e.get('field', '?')}: {e.get('message', '')}" for e in exc.errors)
        return f"{exc.message}" + (f" ({fields})" if fields else ""), ExitCode.ERROR
    if isinstance(exc, errors.JobTimeoutError):
        return f"{exc}: it goes on; follow it with `grid job status {exc.job.job_id}`", ExitCode.TIMEOUT
    if isinstance(exc, errors.ChecksumError):
        return f"{exc}: nothing was kept; try again", ExitCode.ERROR
    if isinstance(exc, errors.GridError | SpecError):
        return str(exc), ExitCode.ERROR
    return None


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``func(args)``, its failures turned into one line on stderr and an :class:`ExitCode`."""
    debug = os.environ.get("GRID_DEBUG", "") not in ("", "0")
    try:
        return func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except CliError as exc:
        if debug:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.code
    except Exception as exc:
        if debug:
            raise
        known = _sdk_error(exc)
        if known is None:
            first = (str(exc).strip().splitlines() or [""])[0]
            known = f"{type(exc).__name__}: {first} (run with GRID_DEBUG=1 for the traceback)", ExitCode.ERROR
        print(f"error: {known[0]}", file=sys.stderr)
        return known[1]
