"""grid/cli/common.py: the live status line and the ``--since`` argument type."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta

import pytest

from grid.cli.common import StatusLine, since
from protocol.messages import JobStatusUpdate
from protocol.status import JobStatus


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def update(status: str, attempt: int = 1) -> JobStatusUpdate:
    return JobStatusUpdate(
        job_id="00000000-0000-4000-8000-000000000000", status=JobStatus(status), attempt=attempt, at=1.0
    )


def test_on_a_terminal_the_status_line_is_rewritten_and_ended_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = Terminal()
    line = StatusLine(terminal)
    line(update("accepted"))
    line(update("streaming_ready", attempt=2))
    line.end()
    line.end()  # once only
    text = terminal.getvalue()
    assert text.count("\r\033[K") == 2 and text.endswith("] streaming_ready (attempt 2)\n")


def test_off_a_terminal_each_status_is_a_line_of_its_own() -> None:
    pipe = io.StringIO()
    line = StatusLine(pipe)
    line(update("accepted"))
    line(update("completed"))
    line.end()
    assert [text.split("] ")[1] for text in pipe.getvalue().splitlines()] == ["accepted", "completed"]


def test_since_takes_a_duration_ago_or_an_iso_time() -> None:
    assert abs(since("2h") - (datetime.now(UTC) - timedelta(hours=2))) < timedelta(seconds=5)
    assert abs(since("1.5d") - (datetime.now(UTC) - timedelta(days=1.5))) < timedelta(seconds=5)
    assert since("2026-01-31") == datetime(2026, 1, 31, tzinfo=UTC)
    assert since("2026-01-31T12:00+02:00") == datetime(2026, 1, 31, 10, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="'soon' is neither a duration ago"):
        since("soon")
