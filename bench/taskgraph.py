"""ArmoniK's HtcMock shape through the local grid's control plane vs the same DAG on Dask (DESIGN.md §9).

Run from the repository root::

    .venv/bin/python bench/taskgraph.py [--levels 100 --width 100 --executors cpu.small:2:2]

In one invocation, on loopback only:

* **Gridmarket**: a real local grid (facilitator with its control plane, validator, miner, warm
  executors) in a temporary home. The stock ``armonik`` client, over the SDK's signed channel,
  submits one root task of ``examples/armonik/htcmock_worker.py`` (the stock worker SDK): the
  workers themselves submit the graph level by level, ``width`` tasks a level (``width - 2`` no-op
  leaves, the next level's spine, an aggregator), ``levels * width + 1`` tasks in all; the root's
  output counts them. Figures come from the tasks' own timestamps (ListTasksDetailed): tasks/s
  over first created → last ended, and the per-task overhead of the no-op leaves (received →
  ended, less the worker's processing).
* **Dask baseline**: the same DAG (same tasks, same edges) on ``distributed.LocalCluster`` with
  2 worker processes of 1 thread, built up front (Dask cannot have its tasks submit the graph as
  they run without a client in each task), computed to the same count.

Progress goes to stderr; the figures, the ratio and how to reproduce go to stdout, and the last
line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/taskgraph.py` puts bench/ first, not the repo

from bench.common import (  # noqa: E402
    STARTED,
    bench_parser,
    dump_logs,
    log,
    percentile,
    process_tree_cpu,
    r,
    run_dir,
    start_run,
    table,
)
from grid.local import LocalGrid, free_port  # noqa: E402

WORKER = ROOT / "examples" / "armonik" / "htcmock_worker.py"
PAGE = 1000


def run_grid(args, home: Path) -> dict:
    from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
    from armonik.common import Task, TaskDefinition, TaskOptions, TaskStatus

    from facilitator_sdk.control import signed_channel
    from protocol.armonik_api.protos import partitions_pb2, partitions_pb2_grpc
    from protocol.keys import Keypair

    grid = LocalGrid(
        home=home,
        facilitator_port=free_port(),
        miner_port=free_port(),
        control_port=free_port(),
        executor_classes=args.executors,
    )
    STARTED.append(grid)
    log(f"grid: starting in {home} (executors {args.executors}) …")
    try:
        grid.start(timeout=60)
        assert grid.control_endpoint is not None
        with signed_channel(grid.control_endpoint, Keypair.generate()) as channel:
            partition = args.executors.split(":")[0]
            stub = partitions_pb2_grpc.PartitionsStub(channel)
            deadline = time.monotonic() + 30
            while partition not in {
                p.id for p in stub.ListPartitions(partitions_pb2.ListPartitionsRequest(page_size=10)).partitions
            }:
                if time.monotonic() > deadline:
                    raise SystemExit(f"partition {partition} never offered")
                time.sleep(0.1)
            options = TaskOptions(
                max_duration=dt.timedelta(minutes=10),
                priority=1,
                max_retries=2,
                partition_id=partition,
                options={"command": json.dumps([sys.executable, str(WORKER)])},
            )
            sessions, results, tasks = ArmoniKSessions(channel), ArmoniKResults(channel), ArmoniKTasks(channel)
            session_id = sessions.create_session(options, partition_ids=[partition])
            root = {"kind": "spine", "level": 0, "levels": args.levels, "width": args.width}
            payload = results.create_results({"root": json.dumps(root).encode()}, session_id)["root"].result_id
            output = results.create_results_metadata(["count"], session_id)["count"].result_id
            expected = args.levels * args.width + 1
            log(f"grid: HtcMock, {args.levels} levels × {args.width} tasks = {expected} tasks …")
            roots = {role: process.pid for role, process in grid.processes.items()}  # type: ignore[attr-defined]
            cpu_before = process_tree_cpu(roots, split={"executors": "executor.forkserver"})
            started = time.monotonic()
            tasks.submit_tasks(session_id, [TaskDefinition(payload_id=payload, expected_output_ids=[output])])
            waiter = _progress(tasks, session_id, expected, Task, TaskStatus)
            ArmoniKEvents(channel).wait_for_result_availability([output], session_id)
            waiter.set()
            wall_s = time.monotonic() - started
            cpu_after = process_tree_cpu(roots, split={"executors": "executor.forkserver"})
            count = int(results.download_result_data(output, session_id))
            if count != expected:
                raise SystemExit(f"the graph counted {count} tasks, not {expected}")
            listed = _all_tasks(tasks, session_id, Task)
    except BaseException:
        dump_logs(home / "logs")
        raise
    finally:
        grid.stop()
        STARTED.remove(grid)
    done = [t for t in listed if t.status == TaskStatus.COMPLETED]
    first = min(t.created_at for t in listed)
    last = max(t.ended_at for t in done)
    span_s = (last - first).total_seconds()
    leaves = [t for t in done if t.created_by and not t.data_dependencies and t.received_at and t.started_at]
    overheads = [
        ((t.ended_at - t.received_at) - (t.processed_at - t.started_at)).total_seconds() * 1000 for t in leaves
    ]
    queued = [(t.received_at - t.submitted_at).total_seconds() * 1000 for t in leaves if t.submitted_at]
    return {
        "tasks": len(done),
        "wall_s": wall_s,
        "span_s": span_s,
        "tasks_per_s": len(done) / span_s,
        "overhead_p50_ms": percentile(overheads, 50),
        "overhead_p99_ms": percentile(overheads, 99),
        "queued_p50_ms": percentile(queued, 50),
        "cpu_ms_per_task": {
            role: (cpu_after[role] - cpu_before.get(role, 0.0)) * 1000 / len(done) for role in cpu_after
        },
    }


def _progress(tasks, session_id: str, expected: int, Task, TaskStatus):
    import threading

    stop = threading.Event()

    def report() -> None:
        while not stop.wait(5.0):
            try:
                counts = tasks.count_tasks_by_status(Task.session_id == session_id)
            except Exception as exc:  # a progress line missed is no failure
                log(f"grid: progress unknown ({exc})")
                continue
            done = counts.get(TaskStatus.COMPLETED, 0)
            log(f"grid: {done}/{expected} tasks completed, {sum(counts.values()) - done} others")

    threading.Thread(target=report, daemon=True).start()
    return stop


def _all_tasks(tasks, session_id: str, Task) -> list:
    listed, page = [], 0
    while True:
        total, chunk = tasks.list_tasks(Task.session_id == session_id, page=page, page_size=PAGE)
        listed += chunk
        if len(listed) >= total or not chunk:
            return listed
        page += 1


# -- the Dask baseline: the same DAG ---------------------------------------------------------------


def _leaf() -> int:
    return 1


def _sum(*inputs: int) -> int:
    return sum(inputs) + 2


def run_dask(args) -> dict:
    from dask import delayed
    from distributed import Client, LocalCluster

    log("dask: LocalCluster with 2 worker processes of 1 thread …")
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.submit(_leaf).result()  # workers up and warm
        started = time.monotonic()
        node = delayed(_leaf, pure=False)()  # the deepest spine
        for _ in range(args.levels):
            leaves = [delayed(_leaf, pure=False)() for _ in range(max(0, args.width - 2))]
            node = delayed(_sum, pure=False)(*leaves, node)
        count = client.compute(node).result()
        wall_s = time.monotonic() - started
    expected = args.levels * args.width + 1
    if count != expected:
        raise SystemExit(f"dask counted {count} tasks, not {expected}")
    # Dask runs the leaves, the deepest spine and the aggregators; the spines above it are the
    # graph's construction here (up front), so its task count is the graph's less the spines.
    tasks = args.levels * (args.width - 1) + 1
    return {"tasks": tasks, "wall_s": wall_s, "tasks_per_s": tasks / wall_s}


def main() -> None:
    parser = bench_parser("taskgraph.py", __doc__)
    parser.add_argument("--levels", type=int, default=100, help="levels of sub-tasking (default 100)")
    parser.add_argument("--width", type=int, default=100, help="tasks per level (default 100: 10,001 tasks)")
    parser.add_argument("--executors", default="cpu.small:2:2", help="GRID_EXECUTOR_CLASSES of the miner")
    args = parser.parse_args()
    start_run()
    with run_dir("taskgraph") as home:
        ours = run_grid(args, home)
    theirs = run_dask(args)
    ratio = ours["tasks_per_s"] / theirs["tasks_per_s"]
    table(
        [
            ("", "tasks", "tasks/s", "wall s", "overhead p50 ms", "p99 ms"),
            ("gridmarket", str(ours["tasks"]), f"{ours['tasks_per_s']:.1f}", f"{ours['wall_s']:.1f}",
             f"{ours['overhead_p50_ms']:.1f}", f"{ours['overhead_p99_ms']:.1f}"),
            ("dask (2 procs)", str(theirs["tasks"]), f"{theirs['tasks_per_s']:.1f}", f"{theirs['wall_s']:.1f}", "", ""),
        ]
    )  # fmt: skip
    cpu = ours["cpu_ms_per_task"]
    print(
        "CPU per task (ms): "
        + ", ".join(f"{role} {ms:.1f}" for role, ms in cpu.items())
        + f"; total {sum(cpu.values()):.1f}"
    )
    print(f"ratio vs dask: {ratio:.3f}×  (first bar: ≥ 200 tasks/s; goal: ≥ 1.0× Dask)")
    print(
        "reproduce: .venv/bin/python bench/taskgraph.py"
        f" --levels {args.levels} --width {args.width} --executors {args.executors}"
    )
    print(
        json.dumps(
            {
                "tasks": ours["tasks"],
                "levels": args.levels,
                "width": args.width,
                "tasks_per_s": r(ours["tasks_per_s"]),
                "wall_s": r(ours["wall_s"]),
                "overhead_p50_ms": r(ours["overhead_p50_ms"]),
                "overhead_p99_ms": r(ours["overhead_p99_ms"]),
                "queued_p50_ms": r(ours["queued_p50_ms"]),
                "cpu_ms_per_task": {role: r(ms) for role, ms in cpu.items()},
                "dask_tasks": theirs["tasks"],
                "dask_tasks_per_s": r(theirs["tasks_per_s"]),
                "ratio_vs_dask": r(ratio),
            }
        )
    )


if __name__ == "__main__":
    main()
