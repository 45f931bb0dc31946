"""compose/local-grid.yml: cold start, image sizes, and a trivial job through it vs the embedded default.

Run from the repository root (as root: it drives the private Docker engine)::

    .venv/bin/python bench/compose_stack.py [--jobs 30 --warmup 3 --starts 2]

It first runs ``scripts/docker_engine.sh`` (starts the private engine if it does not answer),
``scripts/build_test_images.sh busybox`` and ``scripts/build_images.sh`` (both skip what is present;
the app image is rebuilt when its sources changed), then measures, on loopback only:

* **Cold start** of ``compose/local-grid.yml`` with ``compose/host-network.override.yml`` (project
  ``gridmarket-test``, the one of tests/compose, driven by :class:`tests.compose.stack.Stack`):
  wall seconds from ``docker-compose up -d`` with no volumes (``down -v`` first) until every
  long-running service (facilitator, validator, its Celery and dashboard, miner, its Celery, a
  PostgreSQL and a Redis per role: 12) reports healthy, ``--starts`` times, and the median.
* **Image sizes** of gridmarket/app, gridmarket/postgres and gridmarket/redis (``docker image
  inspect``, MB of 10**6 bytes like ``docker images``).
* **Whole-chain trivial job** on that stack (the miner's docker runtime, class ``cpu.small:2:1``):
  ``JobSpec(image="gridtest/busybox:latest", command=["true"])``, p50/p95 of submit→completed over
  ``--jobs`` sequential ``AsyncClient.run`` after ``--warmup``, with a fresh client key. Baseline in
  the same run: the embedded default (:class:`grid.local.LocalGrid`: SQLite, in-memory channel
  layers, every role a process on the host) with the same runtime, class and job; the ratio is
  compose p50 / embedded p50. The embedded default with the process runtime (``command=["true"]``)
  is measured too, for reference. The validator's timestamps in the jobs' histories give the
  median of each step of the chain for each, and each job's time without its container's
  start→exit (the same engine for both, and the noisiest part): its p50 gives a second ratio.

The compose stack and the embedded grids never run at the same time, and each is stopped at the end,
also on Ctrl-C or SIGTERM. If the compose project is already up (tests/compose running), it waits
for it to go away (up to 10 minutes) instead of taking it down.
Progress goes to stderr; the figures, the ratio and how to reproduce go to stdout, and the last line
of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/compose_stack.py` puts bench/ first, not the repo

from bench.common import bench_parser, dump_logs, log, median, r, run_dir, start_run, stop_process, table  # noqa: E402
from bench.data_plane import DOCKER_IMAGE, container_times, measure_chain, ms, start_grid  # noqa: E402
from tests.compose.stack import FACILITATOR, IMAGES, LONG_RUNNING, PORTS, PROJECT, Stack, images_missing, port_open  # noqa: E402

EXECUTORS = "cpu.small:2:1"  # the compose miner's GRID_EXECUTOR_CLASSES
# The images local-grid.yml runs, by short name: app, postgres, redis.
SIZED_IMAGES = {image.partition("/")[2].partition(":")[0]: image for image in IMAGES}
HEALTHY_TIMEOUT_S = 300.0
BUSY_WAIT_S = 600.0  # how long to wait for someone else's stack of the project to go away
POLL_S = 0.5  # how often the services' health is read during a cold start
SETTLE_S = 2.0  # for warm executors to connect once the roles are up
# The statuses a successful job passes, stamped by the validator (its clock: the host's, in compose too).
CHAIN = ["sent", "received", "accepted", "executor_ready", "volumes_ready", "execution_done", "completed"]


# -- the engine and the images ---------------------------------------------------------------------


def prepare_engine() -> str:
    """The private engine's DOCKER_HOST, with the busybox test image and the compose images built."""
    scripts = ROOT / "scripts"
    log("scripts/docker_engine.sh (starts the private engine if it does not answer) …")
    done = subprocess.run([str(scripts / "docker_engine.sh")], stdout=subprocess.PIPE, text=True, timeout=300)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"scripts/docker_engine.sh exited {done.returncode}")
    host = done.stdout.strip().splitlines()[-1]
    env = {**os.environ, "DOCKER_HOST": host}
    warn_untracked()
    for command in (["build_test_images.sh", "busybox"], ["build_images.sh"]):
        log(f"scripts/{' '.join(command)} (skips what is present) …")
        started = time.perf_counter()
        # The scripts' output is progress: to stderr, keeping stdout for the figures. A session of its
        # own, so that an interrupt stops the whole script (its docker build, pip wheel …), not just bash.
        script = subprocess.Popen(
            [str(scripts / command[0]), *command[1:]], env=env, stdout=sys.stderr, start_new_session=True
        )
        try:
            returncode = script.wait(3600)
        finally:
            stop_process(script, f"scripts/{command[0]}")
        if returncode != 0:
            raise RuntimeError(f"scripts/{' '.join(command)} exited {returncode}")
        log(f"  done in {time.perf_counter() - started:.1f}s")
    missing = images_missing(host)
    if missing:
        raise RuntimeError(f"images {missing} are still missing after scripts/build_images.sh")
    log(f"engine at {host}; images present")
    return host


def warn_untracked() -> None:
    """gridmarket/app is built from the git-tracked files only (scripts/build_images.sh): code of the
    work tree that is not tracked yet is missing from it, and what imports it fails in the stack."""
    packages = ["grid", "protocol", "facilitator", "validator", "miner", "executor", "facilitator_sdk"]
    command = ["git", "ls-files", "--others", "--exclude-standard", "--", *packages]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    untracked = [path for path in done.stdout.split() if path.endswith(".py")]
    if untracked:
        log(
            f"warning: gridmarket/app holds only git-tracked files, and {len(untracked)} are not tracked yet "
            f"({', '.join(untracked[:5])}{' …' if len(untracked) > 5 else ''}): the stack's services fail if "
            "tracked code imports them"
        )


def image_sizes_mb(stack: Stack) -> dict[str, float]:
    return {
        name: int(stack.docker("image", "inspect", "--format", "{{.Size}}", image).strip()) / 1e6
        for name, image in SIZED_IMAGES.items()
    }


# -- jobs and their histories ----------------------------------------------------------------------


def chain_steps(jobs: list[Any], latencies: list[float]) -> dict[str, list[float]]:
    """Per step of :data:`CHAIN` (``"sent_to_received"`` …), its duration in each job (seconds), plus
    ``outside``: the client's submit→completed minus the validator's sent→completed (the client to the
    facilitator to the validator, and the completion's way back to the client)."""
    steps: dict[str, list[float]] = {f"{a}_to_{b}": [] for a, b in pairwise(CHAIN)}
    steps["outside"] = []
    for job, latency in zip(jobs, latencies, strict=True):
        at = {event["status"]: event["at"] for event in job.history if event.get("attempt", 1) == job.attempt}
        for a, b in pairwise(CHAIN):
            if a in at and b in at:
                steps[f"{a}_to_{b}"].append(at[b] - at[a])
        if "sent" in at and "completed" in at:
            steps["outside"].append(latency - (at["completed"] - at["sent"]))
    return steps


def without_container(jobs: list[Any], latencies: list[float]) -> list[float]:
    """Each job's submit→completed minus its container's start→exit (``volumes_ready``→``execution_done``):
    the chain's own share, without the engine's (which is the same engine for every grid, and noisy)."""
    rest = []
    for job, latency in zip(jobs, latencies, strict=True):
        at = {event["status"]: event["at"] for event in job.history if event.get("attempt", 1) == job.attempt}
        if "volumes_ready" in at and "execution_done" in at:
            rest.append(latency - (at["execution_done"] - at["volumes_ready"]))
    return rest


def run_jobs(url: str, key_path: Path, spec: Any, label: str, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    latencies, jobs = asyncio.run(measure_chain(url, key_path, spec, label, args.jobs, args.warmup))
    load_after = os.getloadavg()[0]
    log(f"{label}: p50 {ms(latencies):.1f} ms, p95 {ms(latencies, 95):.1f} ms (load average {load_after:.2f})")
    return {
        "latencies": latencies,
        "steps": chain_steps(jobs, latencies),
        "container": container_times(jobs)[0],
        "rest": without_container(jobs, latencies),
        "load": (load_before, load_after),  # the 1-minute load average before and after the jobs
    }


# -- the embedded default --------------------------------------------------------------------------


def run_embedded(workdir: Path, host: str, runtime: str, args: argparse.Namespace) -> dict[str, Any]:
    from facilitator_sdk import JobSpec

    home = workdir / f"embedded-{runtime}"
    label = f"embedded {runtime}"
    extra = {"DOCKER_HOST": host} if runtime == "docker" else {}
    started = time.perf_counter()
    grid = start_grid(home, label, EXECUTORS, runtime, extra)
    start_s = time.perf_counter() - started
    try:
        time.sleep(SETTLE_S)
        spec = JobSpec(image=DOCKER_IMAGE, command=["true"]) if runtime == "docker" else JobSpec(command=["true"])
        # A key of its own, as on the compose stack (the grid's home has one too).
        out = run_jobs(grid.facilitator_url, workdir / f"client-{runtime}.key", spec, label, args)
        out["start_s"] = start_s
        return out
    except Exception:
        dump_logs(home / "logs")
        raise
    finally:
        log(f"{label}: stopping")
        grid.stop()


# -- the compose stack -----------------------------------------------------------------------------


def wait_until_free(stack: Stack) -> None:
    """Return once nothing of the project runs and its ports are free; someone else's stack (a
    tests/compose run) is waited for, never taken down."""
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        taken = [port for port in PORTS if port_open(port)]
        live = sorted(name for name, item in stack.containers().items() if item["status"] != "exited")
        if not taken and not live:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"project {PROJECT} still in use after {BUSY_WAIT_S:.0f}s (ports {taken}, containers {live}); "
                f"if nothing else uses it: docker-compose -p {PROJECT} -f compose/local-grid.yml down -v"
            )
        log(f"compose: project {PROJECT} is in use (ports {taken}, running {live}); waiting for it to go away …")
        time.sleep(10)


def cold_start(stack: Stack) -> dict[str, Any]:
    """``up -d`` on no volumes until every long-running service is healthy: seconds, and when each
    service's container started and was first seen healthy (polled while ``up -d`` runs: docker-compose
    1.x waits there for the dependencies' health conditions)."""
    healthy_at: dict[str, float] = {}
    failed: list[BaseException] = []
    up_s = math.nan

    def up() -> None:
        nonlocal up_s
        try:
            stack.compose("up", "-d", "--no-color", timeout=600)
            up_s = time.perf_counter() - started
        except BaseException as exc:
            failed.append(exc)

    wall_started = time.time()
    started = time.perf_counter()
    upper = threading.Thread(target=up, name="compose-up", daemon=True)
    upper.start()
    try:
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while True:
            try:
                state = stack.containers()
            except AssertionError:  # a container went away between `docker ps` and `docker inspect`
                state = {}
            now = time.perf_counter() - started
            for name in LONG_RUNNING:
                if name not in healthy_at and (state.get(name) or {}).get("health") == "healthy":
                    healthy_at[name] = now
            if failed:
                raise RuntimeError(f"docker-compose up failed: {failed[0]}") from failed[0]
            if len(healthy_at) == len(LONG_RUNNING) and not upper.is_alive():
                break
            if time.monotonic() > deadline:
                waiting = {name: state.get(name) for name in LONG_RUNNING - set(healthy_at)}
                raise RuntimeError(f"not healthy after {HEALTHY_TIMEOUT_S:.0f}s: {waiting}\n{stack.logs()}")
            time.sleep(POLL_S)
    finally:
        if upper.is_alive():  # interrupted or failed: `down` must not race a running `up`
            log("compose: waiting for docker-compose up to return before taking the stack down …")
        upper.join()
    started_at = {}
    for item in json.loads(stack.docker("inspect", *(state[name]["id"] for name in LONG_RUNNING))):
        service = item["Config"]["Labels"]["com.docker.compose.service"]
        started_at[service] = datetime.fromisoformat(item["State"]["StartedAt"]).timestamp() - wall_started
    total = max(healthy_at.values())
    last = max(healthy_at, key=healthy_at.__getitem__)
    return {
        "seconds": total,
        "up_s": up_s,
        "last": last,
        "healthy_at": dict(sorted(healthy_at.items())),
        "started_at": dict(sorted(started_at.items())),
    }


def run_compose(workdir: Path, host: str, args: argparse.Namespace) -> dict[str, Any]:
    from facilitator_sdk import JobSpec

    miner_work = workdir / "miner-work"
    miner_work.mkdir()
    stack = Stack(host, miner_work)
    out: dict[str, Any] = {"images_mb": image_sizes_mb(stack), "starts": [], "down_s": []}
    owned = False  # the project is ours to take down
    try:
        for index in range(args.starts):
            wait_until_free(stack)
            stack.compose("down", "-v", "--remove-orphans")  # what an interrupted run left (nothing runs)
            owned = True
            log(f"compose: cold start {index + 1}/{args.starts} (up -d until {len(LONG_RUNNING)} services healthy) …")
            start = cold_start(stack)
            out["starts"].append(start)
            log(f"compose: all healthy after {start['seconds']:.1f}s (up -d returned at {start['up_s']:.1f}s)")
            if index < args.starts - 1:
                started = time.perf_counter()
                stack.compose("down", "-v", "--remove-orphans")
                owned = False
                out["down_s"].append(time.perf_counter() - started)
        time.sleep(SETTLE_S)
        spec = JobSpec(image=DOCKER_IMAGE, command=["true"])
        out.update(run_jobs(FACILITATOR, workdir / "client-compose.key", spec, "compose", args))
        return out
    except Exception:
        if owned:
            print(stack.logs(), file=sys.stderr)
        raise
    finally:
        if owned:
            log("compose: down -v")
            started = time.perf_counter()
            stack.compose("down", "-v", "--remove-orphans")
            out["down_s"].append(time.perf_counter() - started)


# -- report ----------------------------------------------------------------------------------------


def machine(host: str) -> dict[str, Any]:
    env = {**os.environ, "DOCKER_HOST": host}
    done = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}} {{.Driver}}"], env=env, capture_output=True, text=True
    )
    version, _, driver = done.stdout.strip().partition(" ")
    mem_kb = 0
    try:
        with open("/proc/meminfo") as fh:
            mem_kb = int(next(line for line in fh if line.startswith("MemTotal:")).split()[1])
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    compose = subprocess.run(["docker-compose", "version", "--short"], capture_output=True, text=True)
    return {
        "cpus": os.cpu_count() or 0,
        "mem_total_mb": round(mem_kb * 1024 / 1e6),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "docker_version": version or None,
        "docker_storage_driver": driver or None,
        "docker_compose_version": compose.stdout.strip() or None,
    }


def report(
    args: argparse.Namespace, compose: dict, docker: dict, process: dict, info: dict, elapsed: float, load: float
) -> None:
    colds = [start["seconds"] for start in compose["starts"]]
    cold_median = median(colds)
    images = compose["images_mb"]
    ratio_p50 = ms(compose["latencies"]) / ms(docker["latencies"])
    ratio_p95 = ms(compose["latencies"], 95) / ms(docker["latencies"], 95)
    ratio_rest = ms(compose["rest"]) / ms(docker["rest"])

    print()
    print(
        f"compose/local-grid.yml (PostgreSQL + Redis per role, a container per role) vs the embedded default "
        f"(grid.local.LocalGrid: SQLite, in-memory channel layers); {info['cpus']} CPUs, Python {info['python']}, "
        f"Docker {info['docker_version']} ({info['docker_storage_driver']}), docker-compose "
        f"{info['docker_compose_version']}"
    )
    print()
    print(f"Cold start, up -d on no volumes until all {len(LONG_RUNNING)} long-running services are healthy:")
    for index, start in enumerate(compose["starts"], 1):
        print(
            f"  start {index}: {start['seconds']:.1f} s (up -d returned at {start['up_s']:.1f} s; "
            f"last healthy: {start['last']})"
        )
    print(f"  median: {cold_median:.1f} s")
    print("  each service: its container started → first seen healthy (s after up -d):")
    order = sorted(LONG_RUNNING, key=lambda name: (compose["starts"][0]["healthy_at"][name], name))
    service_rows = [("", *(f"start {index}" for index in range(1, len(compose["starts"]) + 1)))]
    for name in order:
        service_rows.append(
            (
                name,
                *(
                    f"{start['started_at'][name]:5.1f} → {start['healthy_at'][name]:5.1f}"
                    for start in compose["starts"]
                ),
            )
        )
    table(service_rows)
    print(
        f"  embedded default, migrate + start until the validator has the miner: {docker['start_s']:.1f} s "
        f"(docker runtime), {process['start_s']:.1f} s (process runtime)"
    )
    print()
    print(
        "Images: "
        + ", ".join(f"{SIZED_IMAGES[name]} {size:.1f} MB" for name, size in images.items())
        + f" (total {sum(images.values()):.1f} MB)"
    )
    print()
    print(
        f"Trivial job, submit→completed as the client sees it: {args.jobs} sequential after {args.warmup} warm-up, "
        f"executors {EXECUTORS}"
    )
    rows = [("", "p50 ms", "p95 ms", "container start→exit p50 ms", "all but the container p50 ms")]
    for label, figures in (
        (f"compose stack, docker runtime ({DOCKER_IMAGE})", compose),
        ("embedded default, docker runtime (same job)", docker),
        ("embedded default, process runtime (true)", process),
    ):
        container = ms(figures["container"])
        rows.append(
            (
                label,
                f"{ms(figures['latencies']):.1f}",
                f"{ms(figures['latencies'], 95):.1f}",
                "" if math.isnan(container) else f"{container:.1f}",
                f"{ms(figures['rest']):.1f}",
            )
        )
    table(rows)
    print()
    print("Steps of the chain, median ms (the validator's timestamps; outside: the client's time minus")
    print("sent→completed, i.e. client → facilitator → validator and the completion's way back):")
    step_rows = [("", "compose", "embedded docker", "embedded process")]
    for step in compose["steps"]:
        step_rows.append(
            (
                step.replace("_to_", "→"),
                *(f"{ms(figures['steps'][step]):.1f}" for figures in (compose, docker, process)),
            )
        )
    table(step_rows)
    print()
    loads = "; ".join(
        f"{label} {data['load'][0]:.2f} → {data['load'][1]:.2f}"
        for label, data in (("embedded docker", docker), ("embedded process", process), ("compose", compose))
    )
    print(f"  1-minute load average before → after the jobs: {loads} (at the start of the run: {load:.2f})")
    print()
    print("Ratio compose / embedded default, docker runtime (same machine, same run; lower is better):")
    print(
        f"  p50: {ratio_p50:5.2f}x   ({ms(compose['latencies']):.1f} ms vs {ms(docker['latencies']):.1f} ms)\n"
        f"  p95: {ratio_p95:5.2f}x   ({ms(compose['latencies'], 95):.1f} ms vs {ms(docker['latencies'], 95):.1f} ms)\n"
        f"  p50 of all but the container (submit→completed minus volumes_ready→execution_done): {ratio_rest:5.2f}x   "
        f"({ms(compose['rest']):.1f} ms vs {ms(docker['rest']):.1f} ms)"
    )
    print()
    command = (
        f".venv/bin/python bench/compose_stack.py --jobs {args.jobs} --warmup {args.warmup} --starts {args.starts}"
    )
    print(f"Reproduce: {command}")

    figures: dict[str, Any] = {
        "cold_start_s": [r(value, 2) for value in colds],
        "cold_start_median_s": r(cold_median, 2),
        "compose_up_returned_s": [r(start["up_s"], 2) for start in compose["starts"]],
        "cold_start_last_healthy": [start["last"] for start in compose["starts"]],
        "cold_start_healthy_at_s": [
            {name: r(value, 2) for name, value in start["healthy_at"].items()} for start in compose["starts"]
        ],
        "cold_start_started_at_s": [
            {name: r(value, 2) for name, value in start["started_at"].items()} for start in compose["starts"]
        ],
        "compose_down_s": [r(value, 2) for value in compose["down_s"]],
        "embedded_docker_start_s": r(docker["start_s"], 2),
        "embedded_process_start_s": r(process["start_s"], 2),
        **{f"image_{name}_mb": r(size, 1) for name, size in images.items()},
        "images_total_mb": r(sum(images.values()), 1),
    }
    for prefix, data in (("compose", compose), ("embedded_docker", docker), ("embedded_process", process)):
        figures[f"{prefix}_p50_ms"] = r(ms(data["latencies"]), 2)
        figures[f"{prefix}_p95_ms"] = r(ms(data["latencies"], 95), 2)
        figures[f"{prefix}_container_p50_ms"] = r(ms(data["container"]), 2)
        figures[f"{prefix}_without_container_p50_ms"] = r(ms(data["rest"]), 2)
        figures[f"{prefix}_steps_p50_ms"] = {step: r(ms(values), 2) for step, values in data["steps"].items()}
        figures[f"{prefix}_loadavg_1m"] = [r(value, 2) for value in data["load"]]
    figures.update(
        ratio_p50_compose_vs_embedded_docker=r(ratio_p50),
        ratio_p95_compose_vs_embedded_docker=r(ratio_p95),
        ratio_p50_without_container_compose_vs_embedded_docker=r(ratio_rest),
        ratio_p50_compose_vs_embedded_process=r(ms(compose["latencies"]) / ms(process["latencies"])),
        jobs=args.jobs,
        warmup=args.warmup,
        starts=args.starts,
        executors=EXECUTORS,
        elapsed_s=r(elapsed, 1),
        **info,
        loadavg_1m_at_start=r(load, 2),
    )
    print(json.dumps(figures), flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser("compose_stack.py", __doc__)
    parser.add_argument("--jobs", type=int, default=30, help="sequential trivial jobs per grid (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="uncounted warm-up jobs per grid (default 3)")
    parser.add_argument("--starts", type=int, default=2, help="cold starts of the compose stack (default 2)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.starts < 1 or args.warmup < 0:
        parser.error("--jobs and --starts must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    load = start_run()
    started = time.perf_counter()
    with run_dir("gridbench-compose-") as workdir:
        host = prepare_engine()
        info = machine(host)
        # One at a time: each embedded grid is stopped before the next starts, and before the stack comes up.
        docker = run_embedded(workdir, host, "docker", args)
        process = run_embedded(workdir, host, "process", args)
        compose = run_compose(workdir, host, args)
    report(args, compose, docker, process, info, time.perf_counter() - started, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
