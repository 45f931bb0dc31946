"""The ``grid`` command, called as ``main([...])`` (no servers needed for these)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from grid.cli import main
from protocol.keys import Keypair


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GRID_HOME", str(tmp_path))
    return tmp_path


def test_keys_new_writes_a_private_key_file_and_prints_its_hotkey(home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["keys", "new", "alice"]) == 0
    path = home / "keys" / "alice.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keypair.load(path).hotkey in capsys.readouterr().out


def test_keys_new_refuses_to_overwrite_without_force(home: Path, capsys: pytest.CaptureFixture) -> None:
    main(["keys", "new", "alice"])
    before = (home / "keys" / "alice.key").read_text()
    assert main(["keys", "new", "alice"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (home / "keys" / "alice.key").read_text() == before
    assert main(["keys", "new", "alice", "--force"]) == 0
    assert (home / "keys" / "alice.key").read_text() != before


def test_keys_show_prints_the_hotkey_or_explains_what_is_missing(home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["keys", "show", "bob"]) == 1
    assert "grid keys new bob" in capsys.readouterr().err
    main(["keys", "new", "bob"])
    capsys.readouterr()
    assert main(["keys", "show", "bob"]) == 0
    assert capsys.readouterr().out.strip() == Keypair.load(home / "keys" / "bob.key").hotkey


def test_job_commands_without_a_running_grid_say_how_to_start_one(
    home: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRID_FACILITATOR", raising=False)
    assert main(["job", "status", "00000000-0000-0000-0000-000000000000"]) == 3
    assert capsys.readouterr().err == (
        f"error: no grid running in {home}; start one with `grid up` or pass --facilitator URL\n"
    )


def test_job_run_without_a_command_is_a_usage_error(home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["job", "run", "--facilitator", "http://127.0.0.1:9"]) == 2
    assert "give the command after --" in capsys.readouterr().err


def test_job_run_against_an_unreachable_facilitator_fails_clearly(home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["job", "run", "-q", "--facilitator", "http://127.0.0.1:9", "--", "true"]) == 3
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: cannot reach the facilitator at http://127.0.0.1:9: ")
    assert line.endswith(": is the grid running? (`grid up`, or --facilitator URL)")
