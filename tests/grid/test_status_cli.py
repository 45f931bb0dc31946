"""``grid miner status`` and ``grid validator status`` (grid/operators.py) against a real local grid."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facilitator_sdk import Client, JobSpec
from grid.cli import main
from grid.local import LocalGrid, free_port
from protocol.keys import Keypair
from tests.integration.conftest import start_grid


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    grid = start_grid(tmp_path_factory.mktemp("grid"))
    try:
        yield grid
    finally:
        grid.stop()


@pytest.fixture(scope="module")
def job_id(grid: LocalGrid, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A job run to completion first, so the miner has a recent job to show."""
    with Client(grid.facilitator_url, tmp_path_factory.mktemp("client") / "client.key") as client:
        return client.run(JobSpec(command=["echo", "hello"]), timeout=60).job_id


@pytest.fixture
def home(grid: LocalGrid, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GRID_HOME", str(grid.home))
    monkeypatch.delenv("GRID_VALIDATOR_STATUS_FILE", raising=False)
    return grid.home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- miner ---------------------------------------------------------------------------------------


def test_miner_status_prints_validators_executors_and_recent_jobs(
    grid: LocalGrid, job_id: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "miner", "status")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"miner {grid.keys['miner'].hotkey}  at http://127.0.0.1:{grid.miner_port}"
    assert "validators connected: 1" in lines
    assert any(line.startswith(f"  {grid.keys['validator'].hotkey}  ") for line in lines)
    header = lines.index("executors:") + 1
    assert lines[header].split() == ["class", "total", "busy", "free", "warm", "warm", "target"]
    assert lines[header + 1].split()[:2] == ["cpu.small", "4"]
    assert "streaming ports: 0 of 100 in use" in lines
    job_line = next(line for line in lines if job_id in line)
    assert job_line.split()[1:4] == [f"{grid.keys['validator'].hotkey[:12]}…", "cpu.small", "completed"]


def test_miner_status_json_is_the_miners_answer(
    grid: LocalGrid, job_id: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "miner", "status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["hotkey"] == grid.keys["miner"].hotkey
    assert [v["hotkey"] for v in status["validators"]] == [grid.keys["validator"].hotkey]
    assert status["executor_classes"]["cpu.small"]["total"] == 4
    recent = {job["job_id"]: job for job in status["recent_jobs"]}
    assert recent[job_id]["status"] == "completed" and recent[job_id]["ended"] >= recent[job_id]["started"]


def test_miner_status_with_another_key_is_refused(
    grid: LocalGrid, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "other.key"
    Keypair.generate().save(key)
    code, out, err = run(capsys, "miner", "status", "--key", str(key))
    assert (code, out) == (1, "")
    assert err == (
        f"error: the miner at http://127.0.0.1:{grid.miner_port} refused the status request"
        " (403 forbidden: only the miner's own key may read its status)\n"
    )


def test_miner_status_says_when_no_miner_answers(
    grid: LocalGrid, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(capsys, "miner", "status", "--url", url)
    assert code == 3
    assert err.startswith(f"error: no miner answers at {url}: is it running? (grid up)")


def test_miner_status_without_a_grid_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRID_HOME", str(tmp_path))
    code, _, err = run(capsys, "miner", "status")
    assert (code, err) == (
        3,
        f"error: no grid running in {tmp_path}; start one with `grid up`, or pass --url and --key\n",
    )


def test_an_unknown_local_miner_role_is_named(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "miner", "status", "--role", "miner-7")
    assert (code, err) == (1, f"error: the grid in {home} has no miner 'miner-7'; it has miner\n")


# -- validator -----------------------------------------------------------------------------------


def validator_json(capsys: pytest.CaptureFixture[str], settled: bool = True) -> dict:
    """The validator's report, once the finished job's row says so (the connector writes it last)."""
    deadline = time.monotonic() + 10
    while True:
        code, out, err = run(capsys, "validator", "status", "--json")
        assert code == 0, err
        status = json.loads(out)
        if not settled or status["last_hour"].get("completed") or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_validator_status_json_reports_connections_jobs_and_miners(
    grid: LocalGrid, job_id: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = validator_json(capsys)
    assert status["hotkey"] == grid.keys["validator"].hotkey
    connector = status["connector"]
    assert (connector["running"], connector["pid"], connector["facilitator"]) == (
        True,
        grid.processes["validator"].pid,
        True,
    )
    assert connector["miners"] == {grid.keys["miner"].hotkey: True}
    assert status["last_hour"] == {"completed": 1}
    assert status["in_flight"] == []
    (miner,) = status["miners"]
    assert (miner["hotkey"], miner["connected"], miner["classes"]["cpu.small"]["total"]) == (
        grid.keys["miner"].hotkey,
        True,
        4,
    )
    assert (status["incidents_last_hour"], status["blacklist"]) == ([], [])


def test_validator_status_prints_a_readable_report(
    grid: LocalGrid, job_id: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Settled: the job's row written, and its executor back in the miner's manifest as free (the
    # manifest that says so may reach the validator a moment after the job's end).
    deadline = time.monotonic() + 10
    while True:
        status = validator_json(capsys)
        free = status["miners"][0]["classes"]["cpu.small"].get("free")
        if free == 4 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    code, out, err = run(capsys, "validator", "status")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"validator {grid.keys['validator'].hotkey}"
    assert lines[1] == f"connector: running (pid {grid.processes['validator'].pid}), facilitator connected, miners 1/1"
    assert "jobs in flight: 0" in lines
    assert "jobs in the last hour: completed 1" in lines
    assert "miners known: 1" in lines
    miner_line = next(line for line in lines if line.startswith(f"  {grid.keys['miner'].hotkey}"))
    assert miner_line.split()[1:5] == ["yes", "cpu.small", "4/4", "free"]
    assert "incidents in the last hour: 0" in lines
    assert "blacklisted miners: 0" in lines
    assert any(line.startswith("latest score sheet: ") for line in lines)


def test_validator_status_without_a_validator_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRID_HOME", str(tmp_path))
    monkeypatch.delenv("GRID_DATABASE_URL", raising=False)
    code, out, err = run(capsys, "validator", "status")
    assert (code, out) == (1, "")
    assert err == (
        f"error: no validator database at {tmp_path / 'validator.sqlite3'}: is a validator set up here? (grid up)\n"
    )
