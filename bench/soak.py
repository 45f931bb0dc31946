"""Soak: the load of promise 5 (100 trivial jobs in flight, three miners) for minutes on end.

Run from the repository root::

    .venv/bin/python bench/soak.py [--minutes 10] [--in-flight 100] [--miners 3]

It starts a real local grid (``grid.local.LocalGrid``: one facilitator, one validator, ``--miners``
miners with the process runtime and ``--executors`` each) in a temporary home and drives it with
the load of ``tests/reliability/test_load.py`` (:mod:`bench.loadgen`: one ``AsyncClient``,
``--in-flight`` jobs at all times, each printing a token of its own and appending it to an
executions log): first ``--warmup`` seconds uncounted, then ``--minutes`` of load. It reports

* throughput (jobs completed per second while submitting) and p50/p95/p99 submit→completed;
* jobs lost (accepted, not ended by their deadline, checked against ``GET /api/v1/jobs/{id}``),
  duplicated (run more often than attempted, two different events for one attempt, one attempt on
  two miners), with a history out of order, with another job's output, or with events never pushed;
* errors by reason (failure and infra reasons, retried attempts, SDK errors);
* the RSS of every grid process (facilitator, validator, each miner and its executor fork
  server; the executors alive, summed) after the warm-up and at the end, both with no job in
  flight, the peak in between, and the growth; growth beyond ``--rss-growth-pct`` (20) of a
  long-lived process is flagged.

No baseline: the figures are the grid's own over time. Progress goes to stderr every ~10 s; the
figures and how to reproduce go to stdout, and the last line of stdout is one JSON object with
every figure. ``--strict``: exit 1 when a job was lost or duplicated, a check failed or a process
grew beyond the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/soak.py` puts bench/ first, not the repo

from bench.common import STARTED, bench_parser, changed_options, dump_logs, run_dir, start_run  # noqa: E402
from bench.common import log as bench_log  # noqa: E402
from bench.loadgen import LoadGen, Verdict, check  # noqa: E402

log = functools.partial(bench_log, who="soak")


# -- processes and their memory ----------------------------------------------------------------


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, command line) of ``pid``, or ``None`` once it is gone."""
    try:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError, ValueError):
        return None
    return ppid, cmdline


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def grid_processes(grid: Any) -> tuple[dict[str, int], list[int]]:
    """``{name: pid}`` of the long-lived processes (each role, each miner's fork server), and the
    pids of the executors alive now (children of the fork servers)."""
    named = {role: process.pid for role, process in grid.processes.items()}
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    executors = []
    for role in grid.miner_roles:
        servers = children.get(named.get(role, -1), [])  # a miner's one child: ``python -m executor.forkserver``
        for pid, _ in servers:
            named[f"{role}/forkserver" if len(servers) == 1 else f"{role}/{pid}"] = pid
            executors += [child for child, _ in children.get(pid, [])]
    return named, executors


@dataclass
class Memory:
    """RSS (MiB) of each long-lived process: after the warm-up, the peak seen, at the end."""

    start: dict[str, float] = field(default_factory=dict)
    peak: dict[str, float] = field(default_factory=dict)
    end: dict[str, float] = field(default_factory=dict)
    executors_start: tuple[int, float] = (0, 0.0)  # how many alive, their summed RSS
    executors_end: tuple[int, float] = (0, 0.0)
    executors_peak: tuple[int, float] = (0, 0.0)

    def sample(self, grid: Any, into: dict[str, float] | None) -> tuple[int, float]:
        named, executors = grid_processes(grid)
        for name, pid in named.items():
            value = rss_mb(pid)
            if value is None:
                continue
            if into is not None:
                into[name] = value
            self.peak[name] = max(self.peak.get(name, 0.0), value)
        sizes = [size for size in (rss_mb(pid) for pid in executors) if size is not None]
        alive = (len(sizes), sum(sizes))
        if alive[1] > self.executors_peak[1]:
            self.executors_peak = alive
        return alive

    def growth_pct(self, name: str) -> float:
        start, end = self.start.get(name), self.end.get(name)
        return (end - start) / start * 100 if start and end is not None else float("nan")

    def grown(self, limit_pct: float) -> list[str]:
        return [name for name in self.start if self.growth_pct(name) > limit_pct]


# -- the run -----------------------------------------------------------------------------------


async def drive(url: str, key: Path, args: argparse.Namespace, memory: Memory, grid: Any, work: Path) -> Verdict:
    quiet = LoadGen(url, key, in_flight=args.in_flight, job_timeout=args.job_timeout)
    if args.warmup > 0:
        log(f"warm-up: {args.warmup:g}s of load, {args.in_flight} in flight (not counted)")
        warm = check(await quiet.run(duration=args.warmup))
        log(f"warm-up: {warm.completed} jobs completed, {warm.jobs_per_s:.1f} jobs/s")
    await asyncio.sleep(args.settle)  # executors of the last jobs exit, warm ones reconnect
    memory.executors_start = memory.sample(grid, memory.start)
    log("RSS after the warm-up (MiB): " + ", ".join(f"{n} {v:.0f}" for n, v in memory.start.items()))

    def progress(line: str) -> None:
        memory.sample(grid, None)
        peaks = ", ".join(f"{name} {value:.0f}" for name, value in memory.peak.items() if "/" not in name)
        log(f"{line}; peak RSS MiB: {peaks}")

    load = LoadGen(
        url,
        key,
        in_flight=args.in_flight,
        executions_log=work / "executions.log",
        job_timeout=args.job_timeout,
        progress=progress,
        progress_every=10.0,
    )
    log(f"soak: {args.minutes:g} minutes, {args.in_flight} jobs in flight")
    result = await load.run(duration=args.minutes * 60)
    log(f"soak: submitting stopped; {len(result.records)} jobs submitted, all read back from the facilitator")
    await asyncio.sleep(args.settle)  # executors of the last jobs exit, warm ones reconnect
    memory.executors_end = memory.sample(grid, memory.end)
    return check(result)


def run(args: argparse.Namespace, work: Path) -> tuple[Verdict, Memory, float]:
    from grid.local import LocalGrid, free_port

    grid = LocalGrid(
        home=work / "grid",
        facilitator_port=free_port(),
        miners=args.miners,
        miner_ports=[free_port() for _ in range(args.miners)],
        executor_classes=args.executors,
    )
    STARTED.append(grid)
    log(f"grid: starting {args.miners} miner(s) with {args.executors} each in {grid.home} …")
    started = time.perf_counter()
    try:
        grid.start(timeout=90)
        start_s = time.perf_counter() - started
        log(f"grid: ready in {start_s:.1f}s at {grid.facilitator_url}")
        time.sleep(args.settle)
        memory = Memory()
        verdict = asyncio.run(drive(grid.facilitator_url, work / "client.key", args, memory, grid, work))
        if not verdict.ok:
            dump_logs(grid.home / "logs")
        return verdict, memory, start_s
    except Exception:
        dump_logs(grid.home / "logs")
        raise
    finally:
        log("grid: stopping")
        grid.stop()
        STARTED.remove(grid)


# -- report ------------------------------------------------------------------------------------


def report(
    args: argparse.Namespace, verdict: Verdict, memory: Memory, grid_start_s: float, elapsed_s: float, load: float
) -> bool:
    cpus = os.cpu_count() or 0
    grown = memory.grown(args.rss_growth_pct)
    checks_ok = verdict.ok and verdict.unknown_executions == 0
    print()
    print(
        f"Soak: {args.minutes:g} min, {args.in_flight} trivial jobs in flight, {args.miners} miner(s) × "
        f"{args.executors}, process runtime; {cpus} CPUs, Python {platform.python_version()}, "
        f"channel layer {os.environ.get('GRID_CHANNEL_LAYER', 'memory')}"
    )
    print(
        f"  jobs: {verdict.submitted} submitted, {verdict.created} accepted, {verdict.completed} completed, "
        f"final statuses {dict(verdict.by_status)}"
    )
    print(
        f"  throughput: {verdict.jobs_per_s:.2f} jobs/s; submit→completed p50 {verdict.ms(50):.0f} ms, "
        f"p95 {verdict.ms(95):.0f} ms, p99 {verdict.ms(99):.0f} ms"
    )
    print(
        f"  lost {verdict.jobs('lost')}, duplicated {verdict.jobs('duplicated')}, "
        f"ill-ordered {verdict.jobs('ill_ordered')}, wrong output {verdict.jobs('wrong_output')}, "
        f"events never pushed {verdict.jobs('push_missing')} job(s), unknown executions {verdict.unknown_executions}"
    )
    print(f"  errors by reason: {dict(sorted(verdict.errors.items())) or 'none'}")
    if not checks_ok:
        print("  " + verdict.summary().replace("\n", "\n  "))
    print()
    limit = f"{args.rss_growth_pct:g}%"
    print(f"  RSS (MiB), no job in flight after the warm-up and at the end; growth over {limit} flagged")
    width = max(len(name) for name in memory.start) if memory.start else 10
    print(f"  {'process'.ljust(width)}   start     end    peak  growth")
    for name in memory.start:
        flag = "  <-- grew" if name in grown else ""
        print(
            f"  {name.ljust(width)}  {memory.start[name]:6.1f}  {memory.end.get(name, float('nan')):6.1f}  "
            f"{memory.peak.get(name, float('nan')):6.1f}  {memory.growth_pct(name):+5.1f}%{flag}"
        )
    print(
        f"  {'executors (sum)'.ljust(width)}  {memory.executors_start[1]:6.1f}  {memory.executors_end[1]:6.1f}  "
        f"{memory.executors_peak[1]:6.1f}  ({memory.executors_start[0]} → {memory.executors_end[0]} alive, "
        f"{memory.executors_peak[0]} at the peak; not flagged: each is replaced after GRID_EXECUTOR_MAX_JOBS jobs)"
    )
    print()
    print(f"Reproduce: {reproduce_command(args)}")
    figures = {
        "jobs_per_s": round(verdict.jobs_per_s, 2),
        "p50_ms": round(verdict.ms(50), 1),
        "p95_ms": round(verdict.ms(95), 1),
        "p99_ms": round(verdict.ms(99), 1),
        "jobs_submitted": verdict.submitted,
        "jobs_accepted": verdict.created,
        "jobs_completed": verdict.completed,
        "jobs_lost": verdict.jobs("lost"),
        "jobs_duplicated": verdict.jobs("duplicated"),
        "jobs_ill_ordered": verdict.jobs("ill_ordered"),
        "jobs_wrong_output": verdict.jobs("wrong_output"),
        "jobs_push_missing": verdict.jobs("push_missing"),
        "unknown_executions": verdict.unknown_executions,
        "final_statuses": dict(verdict.by_status),
        "errors_by_reason": dict(sorted(verdict.errors.items())),
        "rss_start_mb": {name: round(value, 1) for name, value in memory.start.items()},
        "rss_end_mb": {name: round(value, 1) for name, value in memory.end.items()},
        "rss_peak_mb": {name: round(value, 1) for name, value in memory.peak.items()},
        "rss_growth_pct": {name: round(memory.growth_pct(name), 1) for name in memory.start},
        "rss_grown_over_limit": grown,
        "rss_growth_limit_pct": args.rss_growth_pct,
        "executors_rss_start_mb": round(memory.executors_start[1], 1),
        "executors_rss_end_mb": round(memory.executors_end[1], 1),
        "checks_ok": checks_ok,
        "rss_ok": not grown,
        "minutes": args.minutes,
        "in_flight": args.in_flight,
        "miners": args.miners,
        "executors": args.executors,
        "warmup_s": args.warmup,
        "window_s": round(verdict.window, 1),
        "grid_start_s": round(grid_start_s, 1),
        "elapsed_s": round(elapsed_s, 1),
        "channel_layer": os.environ.get("GRID_CHANNEL_LAYER", "memory"),
        "cpus": cpus,
        "loadavg_1m_at_start": round(load, 2),
    }
    print(json.dumps(figures), flush=True)
    return checks_ok and not grown


def reproduce_command(args: argparse.Namespace) -> str:
    command = ".venv/bin/python bench/soak.py"
    command += f" --minutes {args.minutes:g} --in-flight {args.in_flight} --miners {args.miners}"
    command += changed_options(args, parse_args([]), ("executors", "warmup", "settle", "job_timeout", "rss_growth_pct"))
    if args.strict:
        command += " --strict"
    return command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser("soak.py", __doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of load (default 10)")
    parser.add_argument("--in-flight", type=int, default=100, help="jobs in flight at all times (default 100)")
    parser.add_argument("--miners", type=int, default=3, help="miners (default 3)")
    parser.add_argument(
        "--executors", default="cpu.small:12:8", help="each miner's CLASS:TOTAL:WARM (default cpu.small:12:8)"
    )
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of uncounted load first (default 30)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of quiet before each RSS sample (default 3)")
    parser.add_argument(
        "--job-timeout", type=float, default=180.0, help="seconds a job may take before it counts as lost (default 180)"
    )
    parser.add_argument("--rss-growth-pct", type=float, default=20.0, help="RSS growth flagged (default 20)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a lost or duplicated job or RSS growth")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.in_flight < 1 or args.miners < 1 or args.warmup < 0:
        parser.error("--minutes must be > 0, --in-flight and --miners >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    load = start_run("soak", "still stopping the grid; one moment")
    started = time.perf_counter()
    with run_dir("gridsoak-", "soak", "the grid has been stopped") as work:
        verdict, memory, grid_start_s = run(args, work)
    ok = report(args, verdict, memory, grid_start_s, time.perf_counter() - started, load)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
