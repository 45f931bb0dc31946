"""What the benchmarks share: their processes (start, stop, /proc), the statistics and tables
they report, their command lines."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "STARTED",
    "bench_parser",
    "changed_options",
    "cpu_seconds",
    "dump_logs",
    "log",
    "median",
    "percentile",
    "process_tree_cpu",
    "r",
    "run_dir",
    "start_run",
    "status_kb",
    "stop_everything",
    "stop_process",
    "table",
    "tail",
]

# Everything this run started (processes, or grids with a ``stop()``), for a last-resort stop in
# main() whatever was interrupted where.
STARTED: list[Any] = []


def log(message: str, who: str = "bench") -> None:
    print(f"[{who} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------------------


def start_run(who: str = "bench", still_stopping: str = "still stopping what was started; one moment") -> float:
    """Make SIGINT and SIGTERM unwind main() through every ``finally``; the 1-minute load average, warned of.

    Also when started with SIGINT ignored (``cmd &`` in a script); a second signal does not cut
    the clean-up short.
    """
    interrupted = False

    def _interrupt(signum: int, frame: object) -> None:
        nonlocal interrupted
        if interrupted:
            log(still_stopping, who)
            return
        interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1) / 2:
        log(f"warning: the 1-minute load average is {load:.2f}; other work on this machine skews the figures", who)
    return load


@contextmanager
def run_dir(prefix: str, who: str = "bench", stopped: str = "everything started has been stopped") -> Iterator[Path]:
    """A temporary directory for the run; on the way out whatever :data:`STARTED` holds is stopped
    and the directory removed. An interrupt (see :func:`start_run`) ends the program with 130."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    except KeyboardInterrupt:
        stop_everything()
        log(f"interrupted; {stopped}", who)
        raise SystemExit(130) from None
    finally:
        stop_everything()
        shutil.rmtree(workdir, ignore_errors=True)


def stop_process(process: subprocess.Popen | None, name: str, timeout: float = 10.0) -> None:
    """SIGTERM to the process's group (started with ``start_new_session=True``), SIGKILL after ``timeout``."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"{name} did not stop within {timeout:g}s; killing it")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def stop_everything() -> None:
    """Whatever in :data:`STARTED` is still running (an interrupt in the middle of a stop can skip one): stop it now."""
    while STARTED:
        item = STARTED.pop()
        if isinstance(item, subprocess.Popen):
            if item.poll() is None:
                stop_process(item, f"process {item.pid}", timeout=5)
        else:
            item.stop()


def tail(path: Path, lines: int = 15) -> None:
    """The last ``lines`` of a log file, on stderr."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return
    print(f"---- last lines of {path.name} ----", file=sys.stderr)
    print("\n".join(text), file=sys.stderr)


def dump_logs(log_dir: Path, lines: int = 15) -> None:
    """The tail of every ``*.log`` in ``log_dir`` (a grid's logs), on stderr."""
    for path in sorted(log_dir.glob("*.log")):
        tail(path, lines)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far (all its threads); NaN if unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan


def _proc_table() -> dict[int, tuple[int, float, float, str]]:
    """pid → (ppid, own CPU s, reaped children's CPU s, cmdline) for every readable process."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[int, float, float, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue  # gone between listdir and open
        own = (int(fields[11]) + int(fields[12])) / tick
        reaped = (int(fields[13]) + int(fields[14])) / tick
        found[int(entry)] = (int(fields[1]), own, reaped, cmdline)
    return found


def process_tree_cpu(roots: dict[str, int], split: dict[str, str] | None = None) -> dict[str, float]:
    """CPU seconds so far of each named process tree, from ``/proc``.

    A tree's figure is every live process's user + system time plus what its reaped children
    used (``cutime``/``cstime``), so two snapshots taken around a run give what the run cost,
    even for processes that started and ended in between. ``split`` carves a subtree out under
    its own name: ``{"executors": "executor.forkserver"}`` gives the first process whose command
    line contains ``executor.forkserver`` its own CPU in its parent's tree, and everything it
    forked (live or reaped) under ``executors``.
    """
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)

    def whole(pid: int) -> float:
        _, own, reaped, _ = table[pid]
        return own + reaped + sum(whole(child) for child in children.get(pid, ()))

    totals: dict[str, float] = {name: 0.0 for name in [*roots, *(split or {})]}

    def walk(pid: int, name: str) -> None:
        _, own, reaped, cmdline = table[pid]
        carved = next((part for part, marker in (split or {}).items() if marker in cmdline), None)
        if carved is not None:
            totals[name] += own
            totals[carved] += reaped + sum(whole(child) for child in children.get(pid, ()))
            return
        totals[name] += own + reaped
        for child in children.get(pid, ()):
            walk(child, name)

    for name, pid in roots.items():
        if pid in table:
            walk(pid, name)
    return totals


def status_kb(pid: int, field_name: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


# -- statistics and tables -------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), ``q`` in 0..100; NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def bench_parser(script: str, doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of ``bench/<script>``: its docstring's first paragraph as description."""
    return argparse.ArgumentParser(
        prog=f"bench/{script}",
        description=(doc or "").split("\n\n")[0],
        epilog="Progress goes to stderr; the last line of stdout is one JSON object with every figure.",
    )


def changed_options(args: argparse.Namespace, defaults: argparse.Namespace, names: Iterable[str]) -> str:
    """`` --name value`` for each of ``names`` whose value differs from its default (for "Reproduce:")."""
    return "".join(
        f" --{name.replace('_', '-')} {getattr(args, name)}"
        for name in names
        if getattr(args, name) != getattr(defaults, name)
    )


def r(value: float | None, digits: int = 3) -> float | None:
    """``value`` rounded for the JSON line; ``None`` for a missing or NaN figure."""
    return None if value is None or math.isnan(value) else round(value, digits)


def table(rows: list[tuple[str, ...]]) -> None:
    """Print ``rows`` as columns (the first left-aligned, the others right-aligned), a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  " + "  ".join(cells))
        if index == 0:
            print("  " + "-" * (sum(widths) + 2 * (len(widths) - 1)))
