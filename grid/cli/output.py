"""What the ``grid`` command prints: colour (on a terminal only), JSON lines, transfer progress bars.

Colour follows the usual conventions: only when the stream is a terminal, never with ``NO_COLOR``
set or ``TERM=dumb``. Progress bars are tqdm's (the ``cli`` extra), drawn on stderr only when it
is a terminal and the transfer lasts longer than a moment; without tqdm, transfers are silent.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

__all__ = ["TransferBar", "is_terminal", "paint", "print_json", "status_text", "use_colour"]

_CODES = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "bold": "1", "dim": "2"}
_STATUS_COLOURS = {
    "completed": "green",
    "failed": "red",
    "infra_failed": "red",
    "rejected": "red",
    "cancelled": "yellow",
    "streaming_ready": "blue",
}
BAR_DELAY_S = 0.5  # "longer than a moment": no bar flashes up for a small file


def is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def use_colour(stream: IO[str]) -> bool:
    return is_terminal(stream) and not os.environ.get("NO_COLOR")


def paint(text: str, colour: str, stream: IO[str] | None = None) -> str:
    """``text`` in ``colour`` (a name of ``_CODES``) if ``stream`` (stdout by default) takes colour, else as it is."""
    return f"\033[{_CODES[colour]}m{text}\033[0m" if use_colour(stream or sys.stdout) else text


def status_text(status: str, stream: IO[str] | None = None, width: int = 0) -> str:
    """A job status padded to ``width``, coloured by how it ended (the padding stays uncoloured)."""
    padding = " " * max(0, width - len(status))
    colour = _STATUS_COLOURS.get(status)
    return (paint(status, colour, stream) if colour else status) + padding


def print_json(value: Any, stream: IO[str] | None = None, indent: int | None = None) -> None:
    """One JSON document on one line (or indented), flushed: a reader of ``--json`` sees it at once."""
    stream = stream or sys.stdout
    stream.write(json.dumps(value, indent=indent, default=str) + "\n")
    stream.flush()


class TransferBar:
    """A progress bar for one transfer, fed by the SDK's ``on_progress(done, total)``::

    with TransferBar("upload data.csv") as bar:
        client.upload("data.csv", on_progress=bar)
    """

    def __init__(self, label: str, stream: IO[str] | None = None, delay: float = BAR_DELAY_S) -> None:
        self.label, self.delay = label, delay
        self.stream = stream or sys.stderr
        self._bar: Any = None
        self._disabled = not is_terminal(self.stream)

    def __call__(self, done: int, total: int) -> None:
        if self._disabled:
            return
        if self._bar is None:
            try:
                from tqdm import tqdm
            except ImportError:  # the cli extra is not installed: no bar, the transfer goes on
                self._disabled = True
                return
            self._bar = tqdm(
                total=total,
                desc=self.label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=self.stream,
                delay=self.delay,
                leave=False,
                dynamic_ncols=True,
            )
        self._bar.update(done - self._bar.n)

    def __enter__(self) -> TransferBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
