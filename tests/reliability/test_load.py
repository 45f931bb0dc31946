"""Promise 5 of "Reliability under faults and load": 2,000 trivial jobs with 100 in flight through
one facilitator, one validator and three miners (process runtime) finish with zero lost, zero
duplicated, every status history well-ordered.

The load and the checks are :mod:`bench.loadgen` (``bench/soak.py`` runs the same load for
minutes): one ``AsyncClient`` keeps 100 jobs in flight; each job prints a token of its own and
appends it to an executions log, so a job run twice, or a result that is another job's, shows.
Every job is read back from the facilitator afterwards (its record, not only what was pushed).

The miners have 12 executors each (8 warm): 36 at once, the other jobs of the 100 wait in the
validator's queue. More executors do not make it faster on two cores; they only take the CPU the
grid's own processes need (see bench/README.md, ``soak.py``).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bench.loadgen import LoadGen, check
from grid.local import LocalGrid, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

JOBS = 2000
IN_FLIGHT = 100
MINERS = 3
EXECUTORS = "cpu.small:12:8"


def log_tails(grid: LocalGrid, lines: int = 30) -> str:
    parts = []
    for path in sorted((grid.home / "logs").glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"---- {path.name} ----\n" + "\n".join(tail))
    return "\n".join(parts)


def test_2000_jobs_with_100_in_flight_none_lost_none_duplicated_every_history_in_order(tmp_path: Path) -> None:
    grid = LocalGrid(
        tmp_path / "grid",
        facilitator_port=free_port(),
        miners=MINERS,
        miner_ports=[free_port() for _ in range(MINERS)],
        executor_classes=EXECUTORS,
    )
    grid.start(timeout=60)
    load = LoadGen(
        grid.facilitator_url,
        tmp_path / "client.key",
        in_flight=IN_FLIGHT,
        executions_log=tmp_path / "executions.log",
        job_timeout=180.0,
        progress=lambda line: print(f"[load] {line}", file=sys.stderr, flush=True),
    )
    try:
        result = asyncio.run(load.run(jobs=JOBS))
        verdict = check(result)
        if not verdict.ok:
            print(log_tails(grid), file=sys.stderr)
    finally:
        grid.stop()

    print(
        f"[load] {verdict.completed} jobs in {verdict.elapsed:.1f}s: {verdict.jobs_per_s:.1f} jobs/s, "
        f"submit→completed p50 {verdict.ms(50):.0f} ms, p95 {verdict.ms(95):.0f} ms, p99 {verdict.ms(99):.0f} ms; "
        f"errors {dict(verdict.errors)}",
        file=sys.stderr,
    )
    summary = verdict.summary()
    assert verdict.submitted == JOBS
    assert verdict.lost == [], summary
    assert verdict.duplicated == [], summary
    assert verdict.ill_ordered == [], summary
    assert verdict.wrong_output == [], summary
    assert verdict.push_missing == [], summary
    assert verdict.unknown_executions == 0, summary
    assert dict(verdict.by_status) == {"completed": JOBS}, summary
