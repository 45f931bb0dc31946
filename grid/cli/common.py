"""What the ``grid`` command's groups share: ``$GRID_HOME``, the client, a live status line, argument types."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from grid.cli.errors import CliError, ExitCode
from grid.cli.output import is_terminal, print_json, status_text

__all__ = [
    "StatusLine",
    "add_facilitator_option",
    "client_for",
    "client_key",
    "facilitator_url",
    "grid_home",
    "json_status",
    "positive",
    "since",
]


def grid_home() -> Path:
    return Path(os.environ.get("GRID_HOME", ".grid")).resolve()


def add_facilitator_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--facilitator", help="facilitator URL (default: $GRID_FACILITATOR, or the grid in $GRID_HOME)")


def facilitator_url(args: argparse.Namespace) -> str:
    """``--facilitator``, else ``$GRID_FACILITATOR``, else the URL of the grid running in ``$GRID_HOME``."""
    from grid.local import read_state

    url = getattr(args, "facilitator", None) or os.environ.get("GRID_FACILITATOR")
    if not url:
        state = read_state(grid_home())
        if state is None:
            raise CliError(
                f"no grid running in {grid_home()}; start one with `grid up` or pass --facilitator URL",
                ExitCode.UNREACHABLE,
            )
        url = state["facilitator_url"]
    return url


def client_key(args: argparse.Namespace) -> Path:
    """``--key`` where a command takes it, else ``$GRID_HOME/keys/client.key`` (made on first use)."""
    key = getattr(args, "key", None)
    if key is None:
        return grid_home() / "keys" / "client.key"
    path = Path(key)
    if not path.is_file():
        raise CliError(f"no key file {path}; make one with `grid keys new NAME`", ExitCode.NOT_FOUND)
    return path


def client_for(args: argparse.Namespace, client_class: Any = None) -> Any:
    """A :class:`facilitator_sdk.Client` (or ``client_class``) for ``--facilitator``, ``$GRID_FACILITATOR``
    or the grid in ``$GRID_HOME``, signing with :func:`client_key`."""
    from facilitator_sdk import Client

    url = facilitator_url(args)
    try:
        return (client_class or Client)(url, client_key(args))
    except ValueError as exc:  # a URL that is not http(s)://host:port
        raise CliError(str(exc), ExitCode.USAGE) from None


class StatusLine:
    """One live line on a terminal (``\\r``-rewritten), the status coloured; one line per status otherwise."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr  # looked up now: tests and callers may have replaced it
        self.tty = is_terminal(stream)
        self.started = time.monotonic()
        self._open = False

    def __call__(self, update: Any) -> None:
        elapsed = time.monotonic() - self.started
        attempt = f" (attempt {update.attempt})" if update.attempt > 1 else ""
        text = f"[{elapsed:6.2f}s] {status_text(str(update.status), self.stream)}{attempt}"
        if update.failure is not None:
            text += f": {update.failure.reason}: {update.failure.message}"
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._open = not update.status.is_terminal
            if not self._open:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        """Finish a live line left open (the job goes on), so that what is printed next starts afresh."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def json_status(update: Any) -> None:
    """``--json``'s status lines: each pushed event as one JSON object on stdout."""
    print_json(update.model_dump(mode="json"))


def positive(value: str) -> int:
    """An argparse ``type``: an integer of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since(value: str) -> datetime:
    """An argparse ``type``: ``30m``, ``2h``, ``7d`` … ago, or an ISO 8601 date or time (UTC unless it says)."""
    match = _AGO.match(value.strip())
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match[2]]: float(match[1])})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither a duration ago (30m, 2h, 7d) nor an ISO 8601 time (2026-01-31T12:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
