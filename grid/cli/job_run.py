"""``grid job run`` (batch or streaming) and ``grid job call`` (a signed request to a streaming job).

A streaming job's client key signs every request to it (DESIGN.md §5). ``run --streaming`` makes
that key and keeps it at ``$GRID_HOME/keys/streaming/JOB_ID.key`` (mode 0600) while the job runs, so
``grid job call`` from another shell, or a program using the SDK, can call the job too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grid.cli.common import StatusLine, add_facilitator_option, client_for, grid_home, json_status
from grid.cli.errors import CliError, ExitCode
from grid.cli.output import is_terminal, print_json
from grid.cli.transfers import download_files, parse_input, upload_inputs, write_log

__all__ = ["add_parsers", "streaming_key_path"]

BATCH_TIMEOUT_S = 60.0
STREAMING_START_S = 120.0  # how long `run --streaming` waits for the job to serve
WAIT_MARGIN_S = 60.0  # beyond the execution limit: queueing, start, upload


def streaming_key_path(job_id: str) -> Path:
    return grid_home() / "keys" / "streaming" / f"{job_id}.key"


def _env(values: list[str]) -> dict[str, str]:
    """``--env K=V``, or ``--env K`` for this shell's ``$K``."""
    env = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep:
            if name not in os.environ:
                raise CliError(f"--env {value}: give K=V, or export {name} first to pass it on", ExitCode.USAGE)
            text = os.environ[name]
        env[name] = text
    return env


def _spec(**fields: Any) -> Any:
    """A :class:`JobSpec`, or a usage error naming every field that is wrong, on one line."""
    from pydantic import ValidationError

    from facilitator_sdk import JobSpec

    try:
        return JobSpec(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in exc.errors())
        raise CliError(f"invalid job: {problems}", ExitCode.USAGE) from None


def _exit_code(job: Any) -> int:
    """A completed job's command's exit code; for any other end, its command's if it ran and failed, else 1."""
    if job.status == "completed":
        return job.result.exit_code
    code = (job.failure or {}).get("exit_code")
    return code if isinstance(code, int) and 0 < code < 256 else ExitCode.ERROR


def cmd_job_run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise CliError("give the command after --, e.g. `grid job run -- echo hello`", ExitCode.USAGE)
    if args.output and not (args.output_file or args.artifacts_dir):
        raise CliError(
            "--output DIR downloads what the job declares: add --output-file PATH (repeatable) or --artifacts-dir PATH",
            ExitCode.USAGE,
        )
    if args.output and (args.detach or args.streaming):
        raise CliError(
            "--output waits for the job: drop --detach/--streaming, or `grid job download` later", ExitCode.USAGE
        )
    if args.for_s is not None and not args.streaming:
        raise CliError("--for is for --streaming jobs", ExitCode.USAGE)
    items = [parse_input(value) for value in args.input]
    timeout = args.timeout
    if timeout is None:  # a streaming job lives until Ctrl-C or --for, up to the day a spec allows
        timeout = BATCH_TIMEOUT_S if not args.streaming else (args.for_s + WAIT_MARGIN_S if args.for_s else 86400.0)
    fields: dict[str, Any] = {
        "command": command,
        "image": args.image,
        "executor_class": args.executor_class,
        "env": _env(args.env),
        "outputs": [{"kind": "object", "path": path} for path in args.output_file],
        "artifacts_dir": args.artifacts_dir,
        "timing": {"execution": timeout},
        "streaming": args.streaming,
    }
    # Every mistake said before any upload: the inputs stand in as keys that are never sent.
    _spec(**fields, inputs=[{"kind": "object", "path": item.dest, "key": "unsent"} for item in items])
    with client_for(args) as client:
        fields["inputs"] = upload_inputs(client, items)
        if args.streaming:
            return _run_streaming(client, _spec(**fields), args)
        job = client.create_job(_spec(**fields))
        if args.detach:
            if args.json:
                print_json(job.to_dict())
            else:
                print(job.job_id)
            return 0
        on_status = json_status if args.json else (None if args.quiet else StatusLine())
        try:
            client.wait(job, timeout=timeout + WAIT_MARGIN_S, on_status=on_status)
        except KeyboardInterrupt:
            _end_line(on_status)
            raise CliError(
                f"interrupted; job {job.job_id} goes on: `grid job status {job.job_id}`, "
                f"or end it with `grid job cancel {job.job_id}`",
                ExitCode.INTERRUPTED,
            ) from None
        if args.json:
            print_json(job.to_dict())
            return _exit_code(job)
        return _report(client, job, args)


def _end_line(on_status: Any) -> None:
    if isinstance(on_status, StatusLine):
        on_status.end()


def _report(client: Any, job: Any, args: argparse.Namespace) -> int:
    """A finished batch job as a person reads it: its output, its files, or why it failed."""
    if job.status != "completed":
        failure = job.failure or {}
        if failure.get("stdout_tail"):
            sys.stdout.write(failure["stdout_tail"])
        if failure.get("stderr_tail"):
            sys.stderr.write(failure["stderr_tail"])
        stage = f" during {failure['stage']}" if failure.get("stage") else ""
        reason = failure.get("reason", job.status)
        print(f"error: job {job.job_id} {job.status}{stage}: {reason}: {failure.get('message', '')}", file=sys.stderr)
        return _exit_code(job)
    result = job.result
    for stream, text, truncated in (
        ("stdout", result.stdout, result.stdout_truncated),
        ("stderr", result.stderr, result.stderr_truncated),
    ):
        out = sys.stdout if stream == "stdout" else sys.stderr
        if truncated:  # the result carries the first part only: the whole stream is in the store
            write_log(client, job, stream, out)
        else:
            out.write(text)
            out.flush()
    if args.output:
        download_files(client, job, [], Path(args.output), quiet=True)
        print(f"job {job.job_id}: files written under {args.output}/", file=sys.stderr)
    return result.exit_code


def _run_streaming(client: Any, spec: Any, args: argparse.Namespace) -> int:
    """Start a streaming job with a key kept on disk, say how to call it, keep it until Ctrl-C or ``--for``."""
    from facilitator_sdk import JobTimeoutError, Keypair
    from protocol.spec import new_job_id

    job_id, key = new_job_id(), Keypair.generate()
    key_path = streaming_key_path(job_id)
    key.save(key_path)
    spec = spec.model_copy(update={"streaming_public_key": key.hotkey})
    try:
        job = client.create_job(spec, job_id=job_id)
        job.streaming_key = key
        on_status = json_status if args.json else (None if args.quiet else StatusLine())
        client.wait(job, timeout=STREAMING_START_S, on_status=on_status, until=lambda j: j.streaming is not None)
        if job.streaming is None:
            return _report(client, job, args)
        _end_line(on_status)
        ready = job.streaming.readiness
        url = f"https://{ready.address}:{ready.port}"
        if args.json:
            print_json({"job_id": job_id, "url": url, "miner": job.miner, "key_file": str(key_path)})
        else:
            print(_how_to_call(client, job_id, url, key_path, ready, args.detach), flush=True)
        if args.detach:
            return 0
        try:
            with _sigterm_as_interrupt():
                client.wait(job, timeout=args.for_s, on_status=on_status)
        except (JobTimeoutError, KeyboardInterrupt):
            pass
        if not job.done:
            print(f"ending job {job_id} …", file=sys.stderr)
            job.terminate()
            client.wait(job, timeout=WAIT_MARGIN_S, on_status=on_status)
        if args.json:
            print_json(job.to_dict())
        else:
            print(f"job {job_id}: {job.status}", file=sys.stderr)
        return 0 if job.status == "completed" else _exit_code(job)
    finally:
        if not args.detach:
            key_path.unlink(missing_ok=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the job as Ctrl-C does (a service manager stops us so), then the old handler is back."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _how_to_call(client: Any, job_id: str, url: str, key_path: Path, ready: Any, detached: bool) -> str:
    if detached:
        kept = "kept until you delete it"
        end = f"end it with `grid job cancel {job_id}` (or it ends at its --timeout)"
    else:
        kept, end = "kept while this command runs", "press Ctrl-C to end the job"
    return f"""\
job {job_id} serves at {url}
  job key {ready.job_public_key[:16]}…, certificate {ready.cert_fingerprint[:16]}…, vouched for by its miner
  your requests are signed with {key_path} ({kept})

call it from another shell:
  grid job call {job_id} GET /health

or from Python:
  from facilitator_sdk import Client, Keypair
  with Client("{client.facilitator_url}", "{client_key_path()}") as client:
      job = client.get_job("{job_id}")
      job.streaming_key = Keypair.load("{key_path}")
      with job.stream_client() as stream:
          print(stream.get("/health").text)   # every reply's seal is checked

{end}"""


def client_key_path() -> Path:
    return grid_home() / "keys" / "client.key"


def cmd_job_call(args: argparse.Namespace) -> int:
    from facilitator_sdk import Keypair

    if len(args.request) > 2:
        raise CliError("give [METHOD] PATH, e.g. `grid job call JOB POST /echo -d hi`", ExitCode.USAGE)
    method, path = (["GET", *args.request] if len(args.request) == 1 else args.request)[:2]
    if not path.startswith("/"):
        raise CliError(f"the path {path!r} must start with /", ExitCode.USAGE)
    key_path = Path(args.key) if args.key else streaming_key_path(args.job_id)
    if not key_path.exists():
        raise CliError(
            f"no streaming key {key_path}: only `grid job run --streaming` on this machine has it (or pass --key FILE)",
            ExitCode.NOT_FOUND,
        )
    body = Path(args.data_file).read_bytes() if args.data_file else (args.data or "").encode()
    with client_for(args) as client:
        job = client.get_job(args.job_id)
        job.streaming_key = Keypair.load(key_path)
        started = time.monotonic()
        with job.stream_client() as stream:
            reply = stream.request(method.upper(), path, content=body)
    sys.stdout.write(reply.text)
    if reply.text and not reply.text.endswith("\n") and is_terminal(sys.stdout):
        sys.stdout.write("\n")  # the prompt on a line of its own; a pipe gets the body exactly
    sys.stdout.flush()
    elapsed = (time.monotonic() - started) * 1000
    print(f"{reply.status_code} {reply.reason_phrase} in {elapsed:.0f} ms (reply seal verified)", file=sys.stderr)
    return 0 if reply.status_code < 400 else ExitCode.ERROR


def add_parsers(job_sub: argparse._SubParsersAction) -> None:
    """``grid job run`` and ``grid job call``."""
    run = job_sub.add_parser(
        "run",
        help="run a command as a job; prints its stdout, exits with its code",
        description="Run a command as a job. Without --detach or --streaming it waits, prints the job's "
        "stdout and stderr, and exits with its command's exit code.",
    )
    add_facilitator_option(run)
    run.add_argument("--image", help="docker image (docker runtime)")
    run.add_argument("--executor-class", default="cpu.small", help="executor class (default cpu.small)")
    run.add_argument("--timeout", type=float, help="execution time limit in seconds (default 60; --streaming: --for)")
    run.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        metavar="SRC[:DEST]",
        help="a local file or directory uploaded as $GRID_INPUT_DIR/DEST, or store:KEY[:DEST] (repeatable)",
    )
    run.add_argument(
        "-e", "--env", action="append", default=[], metavar="K=V", help="an environment variable (repeatable)"
    )
    run.add_argument(
        "--output-file",
        action="append",
        default=[],
        metavar="PATH",
        help="a file the job writes under $GRID_OUTPUT_DIR, kept in the store (repeatable)",
    )
    run.add_argument("--artifacts-dir", metavar="PATH", help="a directory under $GRID_OUTPUT_DIR returned inline")
    run.add_argument("-o", "--output", metavar="DIR", help="on completion, download the outputs and artifacts here")
    run.add_argument("-d", "--detach", action="store_true", help="print the job id and return")
    run.add_argument("--json", action="store_true", help="one JSON object per status, then the job")
    run.add_argument("--streaming", action="store_true", help="a streaming job: print how to call it, keep it")
    run.add_argument(
        "--for", dest="for_s", type=float, metavar="SECONDS", help="with --streaming: end it after this long"
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no status line")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    run.set_defaults(func=cmd_job_run)

    call = job_sub.add_parser("call", help="send a signed request to a streaming job; prints the verified reply")
    add_facilitator_option(call)
    call.add_argument("job_id")
    call.add_argument("request", nargs="+", metavar="[METHOD] PATH", help="e.g. GET /health, POST /echo")
    call.add_argument("-d", "--data", help="the request body")
    call.add_argument("--data-file", metavar="FILE", help="the request body, from a file")
    call.add_argument("--key", metavar="FILE", help="the job's streaming key (default: the one `run --streaming` kept)")
    call.set_defaults(func=cmd_job_call)
