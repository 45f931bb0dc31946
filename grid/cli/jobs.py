"""``grid job run|call|status|list|logs|download|cancel``: jobs on a facilitator, through the client SDK.

``run`` and ``call`` live in :mod:`grid.cli.job_run`; the commands that read a job are here.
Every reading command takes ``--json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

from grid.cli import job_run
from grid.cli.common import StatusLine, add_facilitator_option, client_for, positive, since
from grid.cli.errors import CliError
from grid.cli.output import print_json, status_text
from grid.cli.transfers import download_files, write_log
from grid.operators import table
from protocol.status import JobStatus

__all__ = ["add_parser"]


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


def cmd_job_status(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        job = client.get_job(args.job_id)
    if args.json:
        print_json(job.to_dict(), indent=2)
        return 0
    print(f"job {job.job_id}: {status_text(job.status)} (attempt {job.attempt}, miner {job.miner or '-'})")
    for event in job.history:
        failure = event.get("failure") or {}
        extra = f"  {failure.get('reason')}: {failure.get('message')}" if failure else ""
        print(f"  {_clock(event['at'])}  attempt {event['attempt']}  {status_text(event['status'])}{extra}")
    if job.result is not None:
        outputs = ", ".join(out["path"] for out in job.result.outputs) or "none"
        print(f"exit code {job.result.exit_code}; stdout {len(job.result.stdout)} bytes; outputs: {outputs}")
    return 0


def _created(job) -> str:
    created = job.to_dict().get("created_at")
    if not created:
        return "-"
    return datetime.fromisoformat(str(created).replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def cmd_job_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        jobs = client.list_jobs(status=args.status, limit=args.limit, offset=args.offset, since=args.since)
    if args.json:
        print_json([job.to_dict() for job in jobs])
        return 0
    if not jobs:
        print("no jobs" + (" on this page" if args.offset else ""), file=sys.stderr)
        return 0
    rows = [
        (job.job_id, job.status, job.spec.get("executor_class", "cpu.small"), _created(job), _command(job.spec))
        for job in jobs
    ]
    lines = table(["job", "status", "class", "created", "command"], rows, indent="")
    width = max(len("status"), *(len(row[1]) for row in rows))
    print(lines[0])
    for line, job in zip(lines[1:], jobs, strict=True):
        # Colour only the status cell, after the table has measured the plain text.
        start = len(job.job_id) + 2
        print(line[:start] + status_text(job.status, width=width) + line[start + width :])
    if len(jobs) == args.limit:
        print(f"(more may follow: --offset {args.offset + args.limit})", file=sys.stderr)
    return 0


def _command(spec: dict) -> str:
    text = " ".join(spec.get("command", []))
    return text if len(text) <= 60 else text[:59] + "…"


def cmd_job_cancel(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        job = client.cancel_job(args.job_id)
    if args.json:
        print_json(job.to_dict())
    else:
        print(f"job {job.job_id}: {status_text(job.status)}")
    return 0


def cmd_job_logs(args: argparse.Namespace) -> int:
    stream = "stderr" if args.stderr else "stdout"
    with client_for(args) as client:
        job = client.get_job(args.job_id)
        if not job.done:
            if not args.follow:
                raise CliError(
                    f"job {job.job_id} is {job.status}: its logs are kept when it ends; "
                    f"wait for them with `grid job logs {job.job_id} --follow`"
                )
            client.wait(job, timeout=args.timeout, on_status=None if args.quiet else StatusLine())
        write_log(client, job, stream)
    return 0


def cmd_job_download(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        job = client.get_job(args.job_id)
        if not job.done and args.wait:
            client.wait(job, on_status=StatusLine())
        only_logs = bool(args.paths) and set(args.paths) <= {"stdout", "stderr"}
        if job.status != JobStatus.COMPLETED and not only_logs:
            hint = f"; its logs: `grid job download {job.job_id} stdout`"
            if not job.done:
                hint = " (add --wait to wait for it)"
            raise CliError(f"job {job.job_id} is {job.status}: only a completed job has outputs to download{hint}")
        if job.result is None:
            # A failed job may still have kept its logs: download them through the SDK directly.
            for path in args.paths:
                print(client.download(job.job_id, path, Path(args.output_dir) / path))
            return 0
        written = download_files(client, job, args.paths, Path(args.output_dir))
    if not written:
        print(f"job {job.job_id} has no outputs or artifacts to download", file=sys.stderr)
    return 0


def _json_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``grid job``."""
    job = sub.add_parser("job", help="run and inspect jobs")
    job_sub = job.add_subparsers(dest="job_command", required=True)
    job_run.add_parsers(job_sub)

    status = job_sub.add_parser("status", help="a job's status and history")
    add_facilitator_option(status)
    status.add_argument("job_id")
    _json_option(status, "the job (spec, result, failure, history)")
    status.set_defaults(func=cmd_job_status)

    listing = job_sub.add_parser("list", help="your jobs, newest first")
    add_facilitator_option(listing)
    listing.add_argument("--status", choices=[status.value for status in JobStatus], help="only jobs in this status")
    listing.add_argument("--since", type=since, help="only jobs created since: 30m, 2h, 7d ago, or an ISO 8601 time")
    listing.add_argument("--limit", type=positive, default=20, help="how many (default 20, at most 500)")
    listing.add_argument("--offset", type=int, default=0, help="skip this many first (paging)")
    _json_option(listing, "the jobs (a JSON array)")
    listing.set_defaults(func=cmd_job_list)

    logs = job_sub.add_parser("logs", help="a job's whole stdout (or stderr), once it has ended")
    add_facilitator_option(logs)
    logs.add_argument("job_id")
    logs.add_argument("--stderr", action="store_true", help="its stderr instead of its stdout")
    logs.add_argument("-f", "--follow", action="store_true", help="wait for a running job to end, then print")
    logs.add_argument("--timeout", type=float, help="with --follow: give up after this many seconds")
    logs.add_argument("-q", "--quiet", action="store_true", help="with --follow: no status line")
    logs.set_defaults(func=cmd_job_logs)

    download = job_sub.add_parser("download", help="a completed job's outputs and artifacts (or some of them)")
    add_facilitator_option(download)
    download.add_argument("job_id")
    download.add_argument("paths", nargs="*", metavar="PATH", help="which files (default: every output and artifact)")
    download.add_argument("-o", "--output-dir", default=".", help="where to write them (default: here)")
    download.add_argument("--wait", action="store_true", help="wait for a running job to end first")
    download.set_defaults(func=cmd_job_download)

    cancel = job_sub.add_parser("cancel", help="cancel a job")
    add_facilitator_option(cancel)
    cancel.add_argument("job_id")
    _json_option(cancel, "the cancelled job")
    cancel.set_defaults(func=cmd_job_cancel)
