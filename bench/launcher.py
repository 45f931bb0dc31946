"""The process runtime's job start: CPU per trivial job (``true``) for each launcher.

grid-launch (executor/runtimes/launch.c) against util-linux's setpriv + prlimit, the launcher it
replaces, and ``true`` started bare (what no launcher at all would cost), in the same run: the
children's user + system CPU from ``getrusage``, the way the process runtime starts them (no
preexec_fn, so subprocess uses vfork).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/launcher.py` puts bench/ first, not the repo

from bench.common import bench_parser, log, r, table  # noqa: E402
from executor.runtimes import process  # noqa: E402

LIMITS = {"memory": 1024**3, "cpu_seconds": 60}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def commands() -> dict[str, list[str] | None]:
    memory, cpu, fsize = LIMITS["memory"], LIMITS["cpu_seconds"], process.MAX_FILE_BYTES
    util_linux = None
    if process.SETPRIV and process.PRLIMIT:
        util_linux = [
            *(process.SETPRIV, "--pdeathsig", "KILL", "--", process.PRLIMIT, f"--as={memory}"),
            *(f"--cpu={cpu}:{cpu + 1}", "--core=0", f"--fsize={fsize}", "--", "true"),
        ]
    grid_launch = None
    if process.GRID_LAUNCH:
        grid_launch = [process.GRID_LAUNCH, str(os.getpid()), str(memory), str(cpu), str(cpu + 1), str(fsize), "--"]
        grid_launch.append("true")
    return {"bare": ["true"], "grid_launch": grid_launch, "setpriv_prlimit": util_linux}


def measure(command: list[str], starts: int) -> float:
    """Milliseconds of children CPU per start of ``command``."""
    before = children_cpu()
    for _ in range(starts):
        subprocess.run(command, check=True)
    return (children_cpu() - before) * 1000 / starts


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("launcher.py", __doc__)
    parser.add_argument("--starts", type=int, default=500, help="job starts per launcher (default 500)")
    args = parser.parse_args(argv)
    figures: dict[str, float | None] = {}
    for name, command in commands().items():
        if command is None:
            log(f"{name}: not here (grid-launch: scripts/build_launcher.sh; setpriv/prlimit: util-linux)")
            figures[f"{name}_ms"] = None
            continue
        log(f"{name}: {args.starts} starts")
        figures[f"{name}_ms"] = r(measure(command, args.starts))
    rows = [("launcher", "CPU ms per job start")]
    rows += [(name.removesuffix("_ms"), "-" if ms is None else f"{ms:.2f}") for name, ms in figures.items()]
    print()
    table(rows)
    new, old = figures["grid_launch_ms"], figures["setpriv_prlimit_ms"]
    if new and old:
        figures["ratio_setpriv_prlimit_vs_grid_launch"] = r(old / new)
        print(f"\nsetpriv + prlimit cost {old / new:.2f}x what grid-launch does ({old:.2f} vs {new:.2f} ms)")
    print(f"Reproduce: .venv/bin/python bench/launcher.py --starts {args.starts}")
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
