"""bench/common.py's per-role CPU accounting from /proc (what bench/chain_latency.py reports)."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.common import process_tree_cpu

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def burn(seconds: float) -> str:
    return BURN.format(seconds=seconds)


def test_a_tree_counts_its_reaped_children_and_a_split_subtree_apart() -> None:
    # parent burns 0.3 s itself; a child marked "carve-me" burns 0.1 s and forks a grandchild that
    # burns 0.4 s: the carved subtree gets the grandchild, live or reaped, not the parent. (The
    # parent's own command line spells the marker in two pieces, or it would be carved itself.)
    grandchild = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn(0.4)!r}], check=True)"
    carved = f"{burn(0.1)}import subprocess, sys\nsubprocess.run([sys.executable, '-c', {grandchild!r}], check=True)\n"
    parent = (
        f"{burn(0.3)}import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {carved!r} + '#carve' + '-me' + chr(10) + 'time.sleep(9)'])\n"
        "print(child.pid, flush=True)\ntime.sleep(30)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        int(process.stdout.readline())
        time.sleep(0.1)
        deadline = time.monotonic() + 20
        while True:
            totals = process_tree_cpu({"parent": process.pid}, split={"carved": "carve-me"})
            if totals["carved"] >= 0.35 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert 0.4 <= totals["parent"] < 0.8, totals  # its own 0.3 s and the carved child's own 0.1 s
        assert 0.35 <= totals["carved"] < 0.8, totals  # the grandchild, reaped, still counted
    finally:
        process.kill()
        process.wait()


def test_a_root_that_is_gone_counts_nothing_and_names_stay() -> None:
    gone = 2**22 + 12345  # above pid_max's default: never a live process
    assert process_tree_cpu({"gone": gone}, split={"executors": "x"}) == {"gone": 0.0, "executors": 0.0}
