"""The validator's periodic work under Celery beat and a worker on a real Redis broker.

Runs in the Redis pass of the suite (scripts/test.sh starts a redis-server and sets
``GRID_REDIS_URL``); the embedded default runs the same tasks on a thread (tests/grid).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.redis_layer, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def redis_url() -> str:
    if os.environ.get("GRID_CHANNEL_LAYER") != "redis":
        pytest.skip("needs the Redis pass of scripts/test.sh (GRID_CHANNEL_LAYER=redis, GRID_REDIS_URL)")
    return os.environ["GRID_REDIS_URL"]


def validator_env(home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "grid.settings.validator",
        "GRID_HOME": str(home),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen]]:
    url = redis_url()
    env = validator_env(
        tmp_path,
        GRID_PERIODIC="celery",
        GRID_REDIS_URL=url,
        GRID_SCORES_EVERY_S="0.5",
        GRID_BLACKLIST_EXPIRE_S="0.5",
        GRID_RECEIPTS_FETCH_S="3600",
        GRID_REGISTRY_SYNC_S="3600",
    )
    subprocess.run([sys.executable, "-m", "django", "migrate", "--no-input", "-v", "0"], env=env, check=True)
    db = sqlite3.connect(tmp_path / "validator.sqlite3")
    with db:
        db.execute(
            "INSERT INTO validator_blacklistentry (miner_hotkey, reason, until, created_at, created_by, lifted_by)"
            " VALUES (?, 'test', ?, ?, 'validator', '')",
            ("ab" * 32, time.time() - 10, time.time() - 100),
        )
    db.close()
    log = (tmp_path / "celery.log").open("wb")
    command = [sys.executable, "-m", "celery", "-A", "grid.celery", "worker", "--beat", "--pool", "solo"]
    command += ["--schedule", str(tmp_path / "beat-schedule"), "--loglevel", "INFO"]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield tmp_path, process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def query(home: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(home / "validator.sqlite3", timeout=5)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_beat_and_a_worker_run_the_validators_periodic_tasks(worker: tuple[Path, subprocess.Popen]) -> None:
    home, process = worker
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, (home / "celery.log").read_text()[-3000:]
        sheets = query(home, "SELECT COUNT(*) FROM validator_publishedscores")[0][0]
        expired = query(home, "SELECT lifted_by FROM validator_blacklistentry")
        if sheets >= 2 and expired == [("expired",)]:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the periodic tasks did not run:\n" + (home / "celery.log").read_text()[-3000:])
    log = (home / "celery.log").read_text()
    assert "validator.tasks.publish_scores" in log and "validator.tasks.expire_blacklist" in log
