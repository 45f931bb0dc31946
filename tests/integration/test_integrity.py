"""Marketplace integrity on a local grid of three real miners (DESIGN.md §8).

* ``miner``: honest, and the validator's trusted miner for cross-validation;
* ``miner-1``: returns wrong output (its runtime alters what the job wrote before upload);
* ``miner-2``: crashes (its executor dies as soon as a job starts).

Every completed batch job is cross-validated (``GRID_CROSSVAL_SAMPLE=1``). The validator's own
database, read with its own settings, shows what it recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from facilitator_sdk import Client, JobSpec, Output
from grid.local import LocalGrid, free_port
from tests.integration.conftest import RUNNING

ROOT = Path(__file__).resolve().parents[2]
WRONG = "tests.integration.dishonest:WrongOutputRuntime"
CRASHING = "tests.integration.dishonest:CrashingRuntime"
CODE = "import os; print('answer'); open(os.environ['GRID_OUTPUT_DIR'] + '/out.txt', 'w').write('42')"


def job(**spec: object) -> JobSpec:
    return JobSpec(command=[sys.executable, "-c", CODE], outputs=[Output.object("out.txt")], **spec)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    ports = [free_port() for _ in range(3)]
    grid = LocalGrid(
        tmp_path_factory.mktemp("integrity"),
        facilitator_port=free_port(),
        miners=3,
        miner_ports=ports,
        executor_classes="cpu.small:2:1",
        miner_env=[{}, {"GRID_EXECUTOR_RUNTIME": WRONG}, {"GRID_EXECUTOR_RUNTIME": CRASHING}],
        extra_env={"GRID_REDELIVER_S": "0.5", "GRID_CROSSVAL_SAMPLE": "1", "PYTHONPATH": str(ROOT)},
    )
    grid.extra_env["GRID_TRUSTED_MINERS"] = grid.keys["miner"].hotkey
    grid.start(timeout=90)
    RUNNING.append(grid)
    try:
        yield grid
    finally:
        grid.stop()


def validator_rows(grid: LocalGrid, model: str, *fields: str) -> list[dict]:
    """Rows of a validator table, read from its database by its own settings."""
    code = (
        f"import json; from validator.models import {model} as M; "
        f"print(json.dumps(list(M.objects.values({', '.join(map(repr, fields))}))))"
    )
    done = subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", code],
        env=grid.env("validator"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_for(grid: LocalGrid, model: str, predicate, *fields: str, timeout: float = 60) -> list[dict]:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = validator_rows(grid, model, *fields)
        if predicate(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def test_the_grid_routes_around_a_crashing_miner_and_cross_validation_catches_a_wrong_one(
    grid: LocalGrid, tmp_path: Path
) -> None:
    honest, wrong, crashing = (grid.keys[role].hotkey for role in ("miner", "miner-1", "miner-2"))
    with Client(grid.facilitator_url, tmp_path / "client.key") as client:
        # A job pinned to the crashing miner has nowhere else to go: infra_failed, an incident.
        crashed = client.wait(client.create_job(job(miner=crashing, max_attempts=1)), timeout=90)
        assert crashed.status == "infra_failed", crashed.failure
        assert crashed.failure["reason"] == "executor_disconnected"

        # A job pinned to the wrong miner completes — with its wrong output — and is then
        # re-run on the trusted miner, whose digests differ: the wrong miner is blacklisted.
        cheated = client.wait(client.create_job(job(miner=wrong)), timeout=90)
        assert cheated.status == "completed", cheated.failure
        assert cheated.result.stdout == "answer\n"  # inline stdout is captured before the runtime tampers
        entries = wait_for(grid, "BlacklistEntry", lambda rows: rows, "miner_hotkey", "reason")
        assert [entry["miner_hotkey"] for entry in entries] == [wrong], entries
        assert "cross-validation" in entries[0]["reason"]

        # Free jobs now: the wrong miner is skipped as blacklisted, a job that meets the
        # crashing one is retried elsewhere; every one completes on the honest miner.
        jobs = [client.create_job(job(max_attempts=3)) for _ in range(6)]
        for done in (client.wait(each, timeout=120) for each in jobs):
            assert done.status == "completed", done.failure
            assert done.miner == honest
            miners = {event["miner"] for event in done.history if event.get("miner")}
            assert wrong not in miners

    incidents = validator_rows(grid, "Incident", "miner_hotkey", "kind", "job_id", "evidence")
    kinds = {(incident["miner_hotkey"], incident["kind"]) for incident in incidents}
    assert (crashing, "infra_failure") in kinds
    assert (wrong, "crossval_mismatch") in kinds
    assert not any(incident["miner_hotkey"] == honest for incident in incidents)
    mismatch = next(incident for incident in incidents if incident["kind"] == "crossval_mismatch")
    assert mismatch["job_id"] == cheated.job_id
    assert mismatch["evidence"]["trusted_miner"] == honest
    assert mismatch["evidence"]["trusted_digest"] != mismatch["evidence"]["miner_digest"]

    decisions = validator_rows(grid, "RoutingDecision", "job_id", "chosen", "candidates")
    skipped_wrong = [
        decision
        for decision in decisions
        if any(c["hotkey"] == wrong and c["skipped"] == "blacklisted" for c in decision["candidates"])
    ]
    assert skipped_wrong, "routing records the blacklisted miner as skipped"

    # Receipts: both parties signed the honest miner's work, and it shows in the scores.
    receipts = wait_for(
        grid,
        "ReceiptRecord",
        lambda rows: any(r["miner_hotkey"] == honest and r["kind"] == "finished" for r in rows),
        "miner_hotkey",
        "kind",
        "status",
    )
    assert any(r["miner_hotkey"] == honest and r["status"] == "completed" for r in receipts)
