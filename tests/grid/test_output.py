"""grid/cli/output.py: colour only on a terminal, JSON lines, transfer bars only on a terminal."""

from __future__ import annotations

import io
import json

import pytest

from grid.cli.output import TransferBar, paint, print_json, status_text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    assert paint("ok", "green", Terminal()) == "\033[32mok\033[0m"
    assert paint("ok", "green", io.StringIO()) == "ok"
    monkeypatch.setenv("NO_COLOR", "1")
    assert paint("ok", "green", Terminal()) == "ok"
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert paint("ok", "green", Terminal()) == "ok"


def test_a_status_is_coloured_by_how_it_ended_and_padded_outside_the_colour() -> None:
    assert status_text("failed", Terminal(), width=9) == "\033[31mfailed\033[0m   "
    assert status_text("completed", Terminal()) == "\033[32mcompleted\033[0m"
    assert status_text("accepted", Terminal(), width=10) == "accepted  "


def test_print_json_writes_one_line_per_document() -> None:
    out = io.StringIO()
    print_json({"a": 1}, out)
    print_json([1, 2], out)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [{"a": 1}, [1, 2]]


def test_a_transfer_bar_is_drawn_on_a_terminal_and_closed_at_the_end() -> None:
    terminal = Terminal()
    with TransferBar("upload big.bin", stream=terminal, delay=0) as bar:
        for done in (0, 512 * 1024, 1024 * 1024):
            bar(done, 1024 * 1024)
        assert bar._bar.n == 1024 * 1024
    drawn = terminal.getvalue()
    assert drawn.startswith("\rupload big.bin:   0%|") and "/1.00M [" in drawn
    assert drawn.endswith("\r")  # the bar is cleared once the transfer is done


def test_no_bar_off_a_terminal() -> None:
    pipe = io.StringIO()
    with TransferBar("upload big.bin", stream=pipe, delay=0) as bar:
        bar(0, 10)
        bar(10, 10)
    assert pipe.getvalue() == ""
