"""What the ``grid`` command's groups share: ``$GRID_HOME``, a live status line, argument types."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

__all__ = ["StatusLine", "grid_home", "positive"]


def grid_home() -> Path:
    return Path(os.environ.get("GRID_HOME", ".grid")).resolve()


class StatusLine:
    """One live line on a terminal (``\\r``-rewritten); one line per status otherwise."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()

    def __call__(self, update) -> None:
        elapsed = time.monotonic() - self.started
        attempt = f" (attempt {update.attempt})" if update.attempt > 1 else ""
        text = f"[{elapsed:6.2f}s] {update.status}{attempt}"
        if update.failure is not None:
            text += f": {update.failure.reason}: {update.failure.message}"
        if self.tty:
            self.stream.write("\r\033[K" + text)
            if update.status.is_terminal:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def positive(value: str) -> int:
    """An argparse ``type``: an integer of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number
