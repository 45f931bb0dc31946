"""grid/cli/errors.py: every failure one line on stderr with what to do, and its exit code."""

from __future__ import annotations

import argparse

import pytest

from facilitator_sdk import ConnectionError, JobTimeoutError, NotFoundError, RateLimitedError
from grid.cli import main
from grid.cli.errors import CliError, ExitCode, run_command


def failing(exc: BaseException):
    def command(args: argparse.Namespace) -> int:
        raise exc

    return command


class FakeJob:
    job_id, status = "j-1", "accepted"


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (CliError("no key here: make one", ExitCode.NOT_FOUND), 4, "error: no key here: make one"),
        (
            ConnectionError("cannot reach the facilitator at http://x"),
            3,
            "error: cannot reach the facilitator at http://x: is the grid running? (`grid up`, or --facilitator URL)",
        ),
        (NotFoundError(404, "not_found", "no job j-1"), 4, "error: no job j-1: check the id (`grid job list`)"),
        (
            RateLimitedError(429, "rate_limited", "slow down", retry_after=7),
            1,
            "error: slow down: too many requests, try again in 7s",
        ),
        (
            JobTimeoutError(FakeJob(), 5),  # type: ignore[arg-type]
            5,
            "error: job j-1 still accepted after 5s: it goes on; follow it with `grid job status j-1`",
        ),
        (ValueError("bad\nsecond line"), 1, "error: ValueError: bad (run with GRID_DEBUG=1 for the traceback)"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_a_failure_is_one_line_and_an_exit_code(
    exc: BaseException, code: int, line: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRID_DEBUG", raising=False)
    assert run_command(failing(exc), argparse.Namespace()) == code
    out, err = capsys.readouterr()
    assert (out, err.strip("\n")) == ("", line)


def test_grid_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRID_DEBUG", "1")
    with pytest.raises(ValueError, match="bad"):
        run_command(failing(ValueError("bad")), argparse.Namespace())


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    epilog = out[out.index("exit codes:") :]
    for code in ExitCode:
        assert f"\n  {int(code):<4} " in epilog
    assert "GRID_DEBUG=1" in epilog
