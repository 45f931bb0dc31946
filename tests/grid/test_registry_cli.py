"""``grid registry`` and ``grid up --miners``, called as ``main([...])`` against the test database."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from facilitator.registry import get_registry
from grid.cli import build_parser, main
from protocol.keys import Keypair
from protocol.registry import Role

MINER = Keypair.generate()


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """``grid registry`` sets Django up, whose LOGGING binds handlers to this test's captured
    stderr; left in place, they fail every later test's logging with a closed file."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    before = {logger: list(logger.handlers) for logger in loggers}
    yield
    for logger in [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]:
        logger.handlers = before.get(logger, [])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transactional_db: None) -> Path:
    monkeypatch.setenv("GRID_HOME", str(tmp_path))
    return tmp_path


def test_add_list_and_remove_a_miner(home: Path, capsys: pytest.CaptureFixture) -> None:
    assert (
        main(["registry", "add", MINER.hotkey, "--role", "miner", "--stake", "2", "--address", "ws://10.0.0.1:8001"])
        == 0
    )
    assert f"registered miner {MINER.hotkey} (stake 2, ws://10.0.0.1:8001)" in capsys.readouterr().out
    assert main(["registry", "list"]) == 0
    listing = capsys.readouterr().out
    assert "1 neuron(s)" in listing
    header, row = listing.splitlines()[1:3]
    assert header.split() == ["role", "hotkey", "stake", "state", "address"]
    assert row.split() == ["miner", MINER.hotkey, "2", "active", "ws://10.0.0.1:8001"]
    assert main(["registry", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["version"] >= 1
    assert listed["neurons"] == [
        {"hotkey": MINER.hotkey, "role": "miner", "stake": 2.0, "address": "ws://10.0.0.1:8001", "active": True}
    ]
    assert main(["registry", "remove", MINER.hotkey]) == 0
    assert "deactivated miner" in capsys.readouterr().out
    assert get_registry().get(MINER.hotkey).active is False
    assert main(["registry", "add", MINER.hotkey, "--role", "miner"]) == 0  # back, stake and address kept
    assert get_registry().get(MINER.hotkey).model_dump() == {
        "hotkey": MINER.hotkey,
        "role": Role.MINER,
        "stake": 2.0,
        "address": "ws://10.0.0.1:8001",
        "active": True,
    }
    assert main(["registry", "remove", MINER.hotkey, "--purge"]) == 0
    assert get_registry().get(MINER.hotkey) is None


def test_a_key_name_stands_for_its_hotkey(home: Path) -> None:
    main(["keys", "new", "miner-7"])
    assert main(["registry", "add", "miner-7", "--role", "validator"]) == 0
    assert get_registry().get(Keypair.load(home / "keys" / "miner-7.key").hotkey).role is Role.VALIDATOR


def test_mistakes_are_errors_that_say_what_is_wrong(home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["registry", "add", "nobody", "--role", "miner"]) == 4
    assert "error: 'nobody' is neither a hotkey (64 hex characters) nor a key in" in capsys.readouterr().err
    assert main(["registry", "remove", MINER.hotkey]) == 1
    assert f"error: {MINER.hotkey} is not registered here" in capsys.readouterr().err
    assert main(["registry", "add", MINER.hotkey, "--role", "miner", "--address", "http://x"]) == 1
    assert "error: address: must be a ws:// or wss:// address with a host" in capsys.readouterr().err
    assert main(["registry", "add", MINER.hotkey, "--role", "miner", "--stake", "nan"]) == 1
    assert "error: stake: " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["registry", "add", MINER.hotkey, "--role", "oracle"])


def test_grid_up_takes_a_number_of_miners(capsys: pytest.CaptureFixture) -> None:
    assert build_parser().parse_args(["up", "--miners", "3"]).miners == 3
    with pytest.raises(SystemExit):
        build_parser().parse_args(["up", "--miners", "0"])
    assert "must be at least 1, not 0" in capsys.readouterr().err


def test_grid_up_refuses_colliding_ports(home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["up", "--port", "8002", "--miner-port", "8001", "--miners", "2"]) == 1
    assert "the facilitator and each miner need ports of their own" in capsys.readouterr().err
