"""``grid session …`` and ``grid task …``: the control plane's sessions and tasks, from a terminal.

Every call is signed with the client's key, over the SDK's signed channel, to the control plane of
``--control`` / ``$GRID_CONTROL`` / the grid running in ``$GRID_HOME`` (as ``grid control-proxy``).

    grid session list | show ID | pause ID | resume ID | cancel ID | close ID | purge ID | delete ID
    grid task list --session ID [--status S] | show ID | why ID | counts --session ID [--watch]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from grid.cli.common import client_key
from grid.cli.control import control_endpoint
from grid.cli.errors import CliError, ExitCode
from grid.cli.output import print_json

__all__ = ["add_parsers"]

TRANSITIONS = ("pause", "resume", "cancel", "close", "purge", "delete")
PAGE = 100


@contextlib.contextmanager
def _channel(args: argparse.Namespace) -> Iterator[grpc.Channel]:
    from facilitator_sdk.control import signed_channel

    with signed_channel(control_endpoint(args), client_key(args)) as channel:
        try:
            yield channel
        except grpc.RpcError as exc:
            code = exc.code()
            exit_code = ExitCode.NOT_FOUND if code == grpc.StatusCode.NOT_FOUND else ExitCode.ERROR
            if code == grpc.StatusCode.UNAVAILABLE:
                exit_code = ExitCode.UNREACHABLE
            raise CliError(f"{code.name.lower()}: {exc.details()}", exit_code) from None


def _when(message: Any, name: str) -> str:
    return message.__getattribute__(name).ToDatetime().isoformat(timespec="seconds") if message.HasField(name) else ""


# -- sessions -----------------------------------------------------------------------------------


def _session_row(raw: Any) -> dict[str, Any]:
    from protocol.armonik_api.protos import session_status_pb2

    return {
        "session_id": raw.session_id,
        "status": session_status_pb2.SessionStatus.Name(raw.status).removeprefix("SESSION_STATUS_").lower(),
        "partitions": list(raw.partition_ids),
        "created_at": _when(raw, "created_at"),
        "client_submission": raw.client_submission,
        "worker_submission": raw.worker_submission,
    }


def cmd_session_list(args: argparse.Namespace) -> int:
    from protocol.armonik_api.protos import sessions_pb2, sessions_pb2_grpc

    rows, page = [], 0
    with _channel(args) as channel:
        stub = sessions_pb2_grpc.SessionsStub(channel)
        while True:
            reply = stub.ListSessions(sessions_pb2.ListSessionsRequest(page=page, page_size=PAGE))
            rows += [_session_row(s) for s in reply.sessions]
            if len(rows) >= reply.total or not reply.sessions:
                break
            page += 1
    _print(args, rows, ["session_id", "status", "created_at", "partitions"])
    return 0


def cmd_session_show(args: argparse.Namespace) -> int:
    from facilitator_sdk.taskgraph import counts
    from protocol.armonik_api.protos import sessions_pb2, sessions_pb2_grpc

    with _channel(args) as channel:
        raw = sessions_pb2_grpc.SessionsStub(channel).GetSession(sessions_pb2.GetSessionRequest(session_id=args.id))
        row = {**_session_row(raw.session), "tasks": counts(channel, args.id)}
    _print_one(args, row)
    return 0


def _transition(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from protocol.armonik_api.protos import sessions_pb2, sessions_pb2_grpc

        method = f"{name.capitalize()}Session"
        request = getattr(sessions_pb2, f"{method}Request")(session_id=args.id)
        with _channel(args) as channel:
            reply = getattr(sessions_pb2_grpc.SessionsStub(channel), method)(request)
        row = _session_row(reply.session)
        if args.json:
            print_json(row)
        else:
            print(f"session {row['session_id']}: {row['status']}")
        return 0

    return run


# -- tasks --------------------------------------------------------------------------------------


def _task_row(task: Any) -> dict[str, Any]:
    from facilitator_sdk.taskgraph import status_name

    return {
        "task_id": task.id,
        "status": status_name(task.status),
        "session_id": task.session_id,
        "created_at": _when(task, "created_at"),
        "ended_at": _when(task, "ended_at"),
        "message": task.status_message,
    }


def cmd_task_list(args: argparse.Namespace) -> int:
    from protocol.armonik_api.protos import filters_pb2, task_status_pb2, tasks_pb2, tasks_pb2_grpc

    conditions = [
        tasks_pb2.FilterField(
            field=tasks_pb2.TaskField(task_summary_field=tasks_pb2.TaskSummaryField(field=1)),
            filter_string=filters_pb2.FilterString(value=args.session),
        )
    ]
    if args.status:
        try:
            wanted = task_status_pb2.TaskStatus.Value(f"TASK_STATUS_{args.status.upper()}")
        except ValueError:
            raise CliError(f"no task status {args.status!r}", ExitCode.USAGE) from None
        conditions.append(
            tasks_pb2.FilterField(
                field=tasks_pb2.TaskField(task_summary_field=tasks_pb2.TaskSummaryField(field=2)),
                filter_status=tasks_pb2.FilterStatus(value=wanted),
            )
        )
    filters = tasks_pb2.Filters(**{"or": [tasks_pb2.FiltersAnd(**{"and": conditions})]})
    rows, page = [], 0
    with _channel(args) as channel:
        stub = tasks_pb2_grpc.TasksStub(channel)
        while len(rows) < args.limit:
            reply = stub.ListTasks(tasks_pb2.ListTasksRequest(page=page, page_size=PAGE, filters=filters))
            rows += [_task_row(t) for t in reply.tasks]
            if len(rows) >= reply.total or not reply.tasks:
                break
            page += 1
    _print(args, rows[: args.limit], ["task_id", "status", "created_at", "ended_at", "message"])
    return 0


def cmd_task_show(args: argparse.Namespace) -> int:
    from protocol.armonik_api.protos import tasks_pb2, tasks_pb2_grpc

    with _channel(args) as channel:
        task = tasks_pb2_grpc.TasksStub(channel).GetTask(tasks_pb2.GetTaskRequest(task_id=args.id)).task
    row = {
        **_task_row(task),
        "payload_id": task.payload_id,
        "data_dependencies": list(task.data_dependencies),
        "expected_output_ids": list(task.expected_output_ids),
        "created_by": task.created_by,
        "retry_of_ids": list(task.retry_of_ids),
        "partition": task.options.partition_id,
        **{name: _when(task, name) for name in ("submitted_at", "received_at", "started_at", "processed_at")},
    }
    _print_one(args, row)
    return 0


def cmd_task_why(args: argparse.Namespace) -> int:
    from facilitator_sdk.taskgraph import why_waiting

    with _channel(args) as channel:
        report = why_waiting(channel, args.id)
    if args.json:
        print_json(
            {
                "task_id": report.task_id,
                "status": report.status,
                "status_message": report.status_message,
                "unmet": [vars(i) for i in report.unmet],
                "retry_of_ids": report.retry_of_ids,
                "initial_task_id": report.initial_task_id,
            }
        )
    else:
        print("\n".join(report.lines()))
    return 0


def cmd_task_counts(args: argparse.Namespace) -> int:
    from facilitator_sdk.taskgraph import counts

    with _channel(args) as channel:
        while True:
            now = counts(channel, args.session)
            line = ", ".join(f"{status} {n}" for status, n in sorted(now.items())) or "no tasks"
            if args.json:
                print_json(now)
            elif args.watch and sys.stdout.isatty():
                print(f"\r\033[K{line}", end="", flush=True)
            else:
                print(line, flush=True)
            if not args.watch:
                return 0
            try:
                time.sleep(args.every)
            except KeyboardInterrupt:
                print("")
                return 0


# -- output -------------------------------------------------------------------------------------


def _print(args: argparse.Namespace, rows: list[dict[str, Any]], columns: list[str]) -> None:
    if args.json:
        print_json(rows)
        return
    if not rows:
        print("none")
        return
    cells = [[str(row[c]) if not isinstance(row[c], list) else ",".join(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _print_one(args: argparse.Namespace, row: dict[str, Any]) -> None:
    if args.json:
        print_json(row)
        return
    for name, value in row.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        if isinstance(value, dict):
            shown = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
        print(f"{name + ':':22} {shown}")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--control", help="the control plane, HOST:PORT (default: $GRID_CONTROL, or the grid in $GRID_HOME)")
    p.add_argument("--key", help="the client key to sign with (default: $GRID_HOME/keys/client.key)")
    p.add_argument("--json", action="store_true", help="print JSON")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """``grid session`` and ``grid task``."""
    session = sub.add_parser("session", help="the control plane's sessions (ArmoniK API)").add_subparsers(
        dest="session_command", required=True
    )
    p = session.add_parser("list", help="your sessions")
    _common(p)
    p.set_defaults(func=cmd_session_list)
    p = session.add_parser("show", help="one session, with its tasks counted by status")
    p.add_argument("id")
    _common(p)
    p.set_defaults(func=cmd_session_show)
    for name in TRANSITIONS:
        p = session.add_parser(name, help=f"{name} a session")
        p.add_argument("id")
        _common(p)
        p.set_defaults(func=_transition(name))

    task = sub.add_parser("task", help="the control plane's tasks (ArmoniK API)").add_subparsers(
        dest="task_command", required=True
    )
    p = task.add_parser("list", help="a session's tasks")
    p.add_argument("--session", required=True)
    p.add_argument("--status", help="only tasks in this status (pending, submitted, completed, error …)")
    p.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    _common(p)
    p.set_defaults(func=cmd_task_list)
    p = task.add_parser("show", help="one task, with its timing chain")
    p.add_argument("id")
    _common(p)
    p.set_defaults(func=cmd_task_show)
    p = task.add_parser("why", help="why a task waits: its unmet inputs, who owes them, its retry lineage")
    p.add_argument("id")
    _common(p)
    p.set_defaults(func=cmd_task_why)
    p = task.add_parser("counts", help="a session's tasks counted by status")
    p.add_argument("--session", required=True)
    p.add_argument("--watch", action="store_true", help="keep counting (Ctrl-C stops)")
    p.add_argument("--every", type=float, default=1.0, help="seconds between counts with --watch (default 1)")
    _common(p)
    p.set_defaults(func=cmd_task_counts)
