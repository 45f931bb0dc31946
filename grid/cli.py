"""The ``grid`` command: keys, the local grid, jobs, and operators' status (``grid --help``).

``main(argv)`` builds the parser and runs; subcommands stay thin and call library code.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from grid.operators import add_parsers as add_operator_parsers
from protocol.keys import Keypair

__all__ = ["main"]

STREAMING_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "streaming_echo" / "app.py"
DEMO_SCRIPT = (
    "import platform, sys\n"
    "print('hello from a Gridmarket job')\n"
    "print('python', platform.python_version(), 'on', platform.system())\n"
    "print('sum of squares 1..1000 =', sum(i * i for i in range(1, 1001)))\n"
)


def grid_home() -> Path:
    return Path(os.environ.get("GRID_HOME", ".grid")).resolve()


class StatusLine:
    """One live line on a terminal (``\\r``-rewritten); one line per status otherwise."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()

    def __call__(self, update) -> None:
        elapsed = time.monotonic() - self.started
        attempt = f" (attempt {update.attempt})" if update.attempt > 1 else ""
        text = f"[{elapsed:6.2f}s] {update.status}{attempt}"
        if update.failure is not None:
            text += f": {update.failure.reason}: {update.failure.message}"
        if self.tty:
            self.stream.write("\r\033[K" + text)
            if update.status.is_terminal:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


# -- keys ------------------------------------------------------------------------------------------


def cmd_keys_new(args: argparse.Namespace) -> int:
    path = grid_home() / "keys" / f"{args.name}.key"
    if path.exists() and not args.force:
        print(f"error: {path} already exists (use --force to replace it)", file=sys.stderr)
        return 1
    path.unlink(missing_ok=True)
    keypair = Keypair.generate()
    keypair.save(path)
    print(f"{args.name}: {keypair.hotkey}\n  written to {path} (mode 0600)")
    return 0


def cmd_keys_show(args: argparse.Namespace) -> int:
    path = grid_home() / "keys" / f"{args.name}.key"
    if not path.exists():
        print(
            f"error: no key {args.name!r} in {path.parent} (create it with `grid keys new {args.name}`)",
            file=sys.stderr,
        )
        return 1
    print(Keypair.load(path).hotkey)
    return 0


# -- local grid ------------------------------------------------------------------------------------


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


# -- jobs ------------------------------------------------------------------------------------------


def _client(args: argparse.Namespace):
    from facilitator_sdk import Client
    from grid.local import read_state

    url = args.facilitator or os.environ.get("GRID_FACILITATOR")
    if not url:
        state = read_state(grid_home())
        if state is None:
            raise SystemExit(
                f"error: no grid running in {grid_home()}; start one with `grid up` or pass --facilitator URL"
            )
        url = state["facilitator_url"]
    return Client(url, grid_home() / "keys" / "client.key")


def cmd_job_run(args: argparse.Namespace) -> int:
    from facilitator_sdk import GridError, JobError, JobSpec, SpecError

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("error: give the command after --, e.g. `grid job run -- echo hello`", file=sys.stderr)
        return 2
    try:
        spec = JobSpec(
            command=command,
            image=args.image,
            executor_class=args.executor_class,
            timing={"execution": args.timeout},
        )
    except Exception as exc:  # pydantic's ValidationError, shown plainly
        print(f"error: invalid job: {exc}", file=sys.stderr)
        return 2
    with _client(args) as client:
        try:
            job = client.run(spec, timeout=args.timeout + 60, on_status=None if args.quiet else StatusLine())
        except JobError as exc:
            failure = exc.job.failure or {}
            if failure.get("stdout_tail"):
                sys.stdout.write(failure["stdout_tail"])
            if failure.get("stderr_tail"):
                sys.stderr.write(failure["stderr_tail"])
            print(f"error: {exc}", file=sys.stderr)
            code = failure.get("exit_code")
            return code if isinstance(code, int) and code > 0 else 1
        except (GridError, SpecError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    assert job.result is not None
    sys.stdout.write(job.result.stdout)
    sys.stderr.write(job.result.stderr)
    return job.result.exit_code


def cmd_job_status(args: argparse.Namespace) -> int:
    from facilitator_sdk import GridError

    with _client(args) as client:
        try:
            job = client.get_job(args.job_id)
        except GridError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"job {job.job_id}: {job.status} (attempt {job.attempt}, miner {job.miner or '-'})")
    for event in job.history:
        failure = event.get("failure") or {}
        extra = f"  {failure.get('reason')}: {failure.get('message')}" if failure else ""
        stamp = time.strftime("%H:%M:%S", time.localtime(event["at"])) + f".{int(event['at'] % 1 * 1000):03d}"
        print(f"  {stamp}  attempt {event['attempt']}  {event['status']}{extra}")
    if job.result is not None:
        print(f"exit code {job.result.exit_code}; stdout {len(job.result.stdout)} bytes")
    return 0


def cmd_job_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for job in client.list_jobs(status=args.status, limit=args.limit):
            print(f"{job.job_id}  {job.status:<14} {' '.join(job.spec.get('command', []))[:60]}")
    return 0


def cmd_job_cancel(args: argparse.Namespace) -> int:
    from facilitator_sdk import GridError

    with _client(args) as client:
        try:
            job = client.cancel_job(args.job_id)
        except GridError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"job {job.job_id}: {job.status}")
    return 0


# -- registry --------------------------------------------------------------------------------------


def _facilitator_registry():
    """The registry of the facilitator whose database is under ``$GRID_HOME`` (Django set up for it)."""
    import django
    from django.conf import settings

    if not settings.configured:
        os.environ["DJANGO_SETTINGS_MODULE"] = "grid.settings.facilitator"
    django.setup()
    from facilitator.registry import get_registry

    return get_registry()


def _hotkey(name: str) -> str:
    """A hotkey as given, or the hotkey of the key file ``$GRID_HOME/keys/NAME.key``."""
    if len(name) == 64 and all(char in "0123456789abcdef" for char in name):
        return name
    path = grid_home() / "keys" / f"{name}.key"
    if not path.exists():
        raise SystemExit(f"error: {name!r} is neither a hotkey (64 hex characters) nor a key in {path.parent}")
    return Keypair.load(path).hotkey


def cmd_registry(args: argparse.Namespace) -> int:
    from django.db import DatabaseError

    from facilitator.registry import RegistryError
    from protocol.registry import Role

    registry = _facilitator_registry()
    try:
        if args.registry_command == "list":
            neurons = registry.neurons()
            print(f"registry version {registry.version()}: {len(neurons)} neuron(s)")
            for n in neurons:
                state = "active" if n.active else "inactive"
                print(f"{n.role:<10} {n.hotkey}  stake {n.stake:<8g} {state:<8} {n.address or '-'}")
        elif args.registry_command == "add":
            neuron = registry.register(_hotkey(args.hotkey), Role(args.role), stake=args.stake, address=args.address)
            print(
                f"registered {neuron.role} {neuron.hotkey} (stake {neuron.stake:g}, {neuron.address or 'no address'})"
            )
        elif args.purge:
            registry.remove(_hotkey(args.hotkey))
            print(f"removed {args.hotkey} (it may register again by announcing, if the registry is open)")
        else:
            neuron = registry.deactivate(_hotkey(args.hotkey))
            print(f"deactivated {neuron.role} {neuron.hotkey}: refused at handshakes, no longer dialled")
    except RegistryError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except DatabaseError as exc:
        print(
            f"error: the facilitator's database in {grid_home()} is not ready ({exc}); start it once", file=sys.stderr
        )
        return 1
    return 0


# -- parser ----------------------------------------------------------------------------------------


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grid", description="Gridmarket: a decentralized compute marketplace.")
    sub = parser.add_subparsers(dest="command", required=True)

    keys = sub.add_parser("keys", help="create and show ed25519 keys under $GRID_HOME/keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_sub.add_parser("new", help="create a key")
    new.add_argument("name")
    new.add_argument("--force", action="store_true", help="replace an existing key")
    new.set_defaults(func=cmd_keys_new)
    show = keys_sub.add_parser("show", help="print a key's hotkey")
    show.add_argument("name")
    show.set_defaults(func=cmd_keys_show)

    def grid_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--port", type=int, default=8000, help="facilitator port (default 8000)")
        p.add_argument("--miner-port", type=int, default=8001, help="the first miner's port (default 8001)")
        p.add_argument("--miners", type=_positive, default=1, help="how many miners, on consecutive ports (default 1)")
        p.add_argument("--executors", default="cpu.small:4:2", help="CLASS:TOTAL:WARM,... (default cpu.small:4:2)")
        p.add_argument(
            "--runtime",
            choices=["process", "docker"],
            default="process",
            help="how executors run jobs (docker needs an engine: scripts/docker_engine.sh)",
        )

    up = sub.add_parser("up", help="run a local grid (facilitator, validator, miners) until Ctrl-C")
    grid_options(up)
    up.add_argument(
        "--dashboard-port", type=int, help="the validator dashboard's port (default 8002, or the one after the miners')"
    )
    up.set_defaults(func=cmd_up)
    demo = sub.add_parser("demo", help="run a sample job on the local grid, starting it if needed")
    grid_options(demo)
    demo.add_argument("--streaming", action="store_true", help="run the sample streaming job instead")
    demo.set_defaults(func=cmd_demo)

    registry = sub.add_parser("registry", help="the facilitator's registry of validators and miners (in $GRID_HOME)")
    registry_sub = registry.add_subparsers(dest="registry_command", required=True)
    registry_sub.add_parser("list", help="every neuron, with its role, stake, state and address")
    add = registry_sub.add_parser("add", help="register a neuron, or change one (and activate it)")
    add.add_argument("hotkey", help="a hotkey, or the name of a key under $GRID_HOME/keys")
    add.add_argument("--role", choices=["miner", "validator"], required=True)
    add.add_argument("--stake", type=float, help="its stake (default: unchanged, or 0)")
    add.add_argument("--address", help="a miner's ws:// or wss:// root (default: unchanged)")
    remove = registry_sub.add_parser("remove", help="deactivate a neuron (kept listed, so it cannot announce back)")
    remove.add_argument("hotkey", help="a hotkey, or the name of a key under $GRID_HOME/keys")
    remove.add_argument("--purge", action="store_true", help="forget it entirely instead")
    registry.set_defaults(func=cmd_registry)

    job = sub.add_parser("job", help="run and inspect jobs")
    job_sub = job.add_subparsers(dest="job_command", required=True)

    def client_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--facilitator", help="facilitator URL (default: the grid running in $GRID_HOME)")

    run = job_sub.add_parser("run", help="run a command as a job; prints its stdout, exits with its code")
    client_options(run)
    run.add_argument("--image", help="docker image (docker runtime)")
    run.add_argument("--executor-class", default="cpu.small")
    run.add_argument("--timeout", type=float, default=60.0, help="execution time limit in seconds (default 60)")
    run.add_argument("-q", "--quiet", action="store_true", help="no status line")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    run.set_defaults(func=cmd_job_run)
    status = job_sub.add_parser("status", help="a job's status and history")
    client_options(status)
    status.add_argument("job_id")
    status.set_defaults(func=cmd_job_status)
    listing = job_sub.add_parser("list", help="your recent jobs")
    client_options(listing)
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(func=cmd_job_list)
    cancel = job_sub.add_parser("cancel", help="cancel a job")
    client_options(cancel)
    cancel.add_argument("job_id")
    cancel.set_defaults(func=cmd_job_cancel)
    add_operator_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
