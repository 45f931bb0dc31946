"""``grid up`` and ``grid demo``: the local grid (facilitator, validator, miners), and a sample job on it."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from grid.cli.common import StatusLine, grid_home, positive

__all__ = ["add_parser"]

# grid/cli/up.py → the repository root is three levels up.
STREAMING_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "streaming_echo" / "app.py"
DEMO_SCRIPT = (
    "import platform, sys\n"
    "print('hello from a Gridmarket job')\n"
    "print('python', platform.python_version(), 'on', platform.system())\n"
    "print('sum of squares 1..1000 =', sum(i * i for i in range(1, 1001)))\n"
)


def _start_grid(args: argparse.Namespace):
    from grid.local import GridStartError, LocalGrid

    try:
        grid = LocalGrid(
            grid_home(),
            facilitator_port=args.port,
            miner_port=args.miner_port,
            executor_classes=args.executors,
            runtime=args.runtime,
            miners=args.miners,
            dashboard_port=_dashboard_port(args) if args.command == "up" else None,
            control_port=(args.control_port or None) if args.command == "up" else None,
        )
    except ValueError as exc:  # ports that collide
        raise GridStartError(str(exc)) from exc
    print(f"starting the local grid in {grid.home} …", file=sys.stderr)
    grid.start()
    return grid


def _dashboard_port(args: argparse.Namespace) -> int:
    """``--dashboard-port``, or 8002 unless the facilitator or a miner has it (then the port after the miners')."""
    if args.dashboard_port is not None:
        return args.dashboard_port
    taken = {args.port, *range(args.miner_port, args.miner_port + args.miners)}
    return 8002 if 8002 not in taken else max(taken) + 1


def cmd_up(args: argparse.Namespace) -> int:
    from grid.local import GridStartError, read_state

    running = read_state(grid_home())
    if running:
        print(f"a grid is already running here: {running['facilitator_url']} (pids {running['pids']})", file=sys.stderr)
        return 1
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    # Before anything starts: a SIGTERM that arrives as the banner is printed must still stop
    # the grid's processes (they run in sessions of their own and would outlive us).
    signal.signal(signal.SIGTERM, _stop)
    try:
        grid = _start_grid(args)
    except GridStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"facilitator  {grid.facilitator_url}   (API docs: {grid.facilitator_url}/api/v1/docs)")
    print(f"             hotkey {grid.keys['facilitator'].hotkey}")
    if grid.control_endpoint:
        print(f"control      {grid.control_endpoint}   (ArmoniK gRPC API v1, signed calls: docs/control-plane.md)")
    for role in grid.miner_roles:
        print(f"{role:<12} {grid.miner_ws_of(role)}/ws/validator/   executors {grid.executor_classes}")
        print(f"             hotkey {grid.keys[role].hotkey}")
    print(f"validator    connected to the facilitator and {grid.miners} miner(s), found in the registry")
    print(f"             hotkey {grid.keys['validator'].hotkey}")
    if grid.admin_login is not None:
        user, password = grid.admin_login
        login = f"login {user} / {password}" if password else f"login {user}: `python -m django changepassword {user}`"
        print(f"dashboard: {grid.dashboard_url}/ ({login})")
    print(f"logs         {grid.home}/logs/")
    print("running; press Ctrl-C to stop", flush=True)
    try:
        while not stop:
            for role, process in grid.processes.items():
                if process.poll() is not None:
                    print(f"the {role} exited ({process.returncode}); see {grid.home}/logs/{role}.log", file=sys.stderr)
                    stop = True
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    print("\nstopping …", file=sys.stderr)
    grid.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from facilitator_sdk import Client, JobError, JobSpec
    from grid.local import GridStartError, read_state

    state = read_state(grid_home())
    grid = None
    if state is None:
        try:
            grid = _start_grid(args)
        except GridStartError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        url = grid.facilitator_url
    else:
        url = state["facilitator_url"]
        print(f"using the grid already running at {url}", file=sys.stderr)
    try:
        with Client(url, grid_home() / "keys" / "client.key") as client:
            if args.streaming:
                return _demo_streaming(client, args)
            spec = JobSpec(command=[sys.executable, "-c", DEMO_SCRIPT])
            print("submitting a sample batch job:", " ".join(spec.command[:2]), "…", file=sys.stderr)
            try:
                job = client.run(spec, timeout=120, on_status=StatusLine())
            except JobError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            assert job.result is not None
            print(f"job {job.job_id} completed on miner {job.miner[:12] if job.miner else '?'}…; its output:")
            print(job.result.stdout, end="")
            return 0
    finally:
        if grid is not None:
            print("stopping the local grid …", file=sys.stderr)
            grid.stop()


def _demo_streaming(client, args: argparse.Namespace) -> int:
    """A streaming job: the sample token streamer, called directly with signed requests."""
    from facilitator_sdk import GridError, JobSpec

    if args.runtime == "docker":
        spec = JobSpec(image="gridtest/streaming:latest", command=["python3", "/app/app.py"], streaming=True)
    else:
        spec = JobSpec(command=[sys.executable, str(STREAMING_EXAMPLE)], streaming=True)
    spec = spec.model_copy(update={"timing": spec.timing.model_copy(update={"execution": 120.0})})
    print("submitting a sample streaming job (examples/streaming_echo) …", file=sys.stderr)
    job = client.create_job(spec)
    try:
        endpoint = job.wait_for_streaming(timeout=120)
        ready = endpoint.readiness
        print(
            f"streaming_ready at https://{ready.address}:{ready.port} (job key {ready.job_public_key[:12]}…,",
            file=sys.stderr,
        )
        print(f"  certificate {ready.cert_fingerprint[:16]}…, vouched for by miner {job.miner[:12]}…)", file=sys.stderr)
        with job.stream_client() as stream:
            reply = stream.post("/echo", content=b"hello through the gateway")
            print(f"POST /echo → {reply.status_code} {reply.text!r} (reply signature verified)")
            print("GET /tokens → ", end="", flush=True)
            with stream.stream("GET", "/tokens?n=12&delay=0.05&prompt=gridmarket") as tokens:
                for chunk in tokens.iter_bytes():
                    print(chunk.decode(errors="replace"), end="", flush=True)
            print("(stream sealed and verified)")
        job.terminate()
        job.wait(timeout=60)
    except GridError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"job {job.job_id} {job.status} after the client ended it", file=sys.stderr)
    return 0 if job.status == "completed" else 1


def _grid_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8000, help="facilitator port (default 8000)")
    p.add_argument("--miner-port", type=int, default=8001, help="the first miner's port (default 8001)")
    p.add_argument("--miners", type=positive, default=1, help="how many miners, on consecutive ports (default 1)")
    p.add_argument("--executors", default="cpu.small:4:2", help="CLASS:TOTAL:WARM,... (default cpu.small:4:2)")
    p.add_argument(
        "--runtime",
        choices=["process", "docker"],
        default="process",
        help="how executors run jobs (docker needs an engine: scripts/docker_engine.sh)",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``grid up`` and ``grid demo``."""
    up = sub.add_parser("up", help="run a local grid (facilitator, validator, miners) until Ctrl-C")
    _grid_options(up)
    up.add_argument(
        "--dashboard-port", type=int, help="the validator dashboard's port (default 8002, or the one after the miners')"
    )
    up.add_argument(
        "--control-port",
        type=int,
        default=8005,
        help="the control plane's gRPC port (ArmoniK API v1; default 8005, 0: not served)",
    )
    up.set_defaults(func=cmd_up)
    demo = sub.add_parser("demo", help="run a sample job on the local grid, starting it if needed")
    _grid_options(demo)
    demo.add_argument("--streaming", action="store_true", help="run the sample streaming job instead")
    demo.set_defaults(func=cmd_demo)
