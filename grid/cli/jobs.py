"""``grid job run|status|list|cancel``: jobs on a facilitator, through the client SDK."""

from __future__ import annotations

import argparse
import os
import sys
import time

from grid.cli.common import StatusLine, grid_home

__all__ = ["add_parser"]


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


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--facilitator", help="facilitator URL (default: the grid running in $GRID_HOME)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``grid job``."""
    job = sub.add_parser("job", help="run and inspect jobs")
    job_sub = job.add_subparsers(dest="job_command", required=True)
    run = job_sub.add_parser("run", help="run a command as a job; prints its stdout, exits with its code")
    _client_options(run)
    run.add_argument("--image", help="docker image (docker runtime)")
    run.add_argument("--executor-class", default="cpu.small")
    run.add_argument("--timeout", type=float, default=60.0, help="execution time limit in seconds (default 60)")
    run.add_argument("-q", "--quiet", action="store_true", help="no status line")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    run.set_defaults(func=cmd_job_run)
    status = job_sub.add_parser("status", help="a job's status and history")
    _client_options(status)
    status.add_argument("job_id")
    status.set_defaults(func=cmd_job_status)
    listing = job_sub.add_parser("list", help="your recent jobs")
    _client_options(listing)
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(func=cmd_job_list)
    cancel = job_sub.add_parser("cancel", help="cancel a job")
    _client_options(cancel)
    cancel.add_argument("job_id")
    cancel.set_defaults(func=cmd_job_cancel)
