"""``grid miner status`` and ``grid validator status``: what a running miner or validator is doing.

The miner is asked over HTTP (``GET /api/v1/status``, signed with the miner's own key, which
the operator holds); the validator is read where it runs, from its status file and database
(``python -m django validator_status`` on the validator's settings, in a subprocess). Both print
a readable report, or the raw JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from protocol.keys import Keypair

__all__ = ["add_parsers", "miner_report", "validator_report"]

STATUS_PATH = "/api/v1/status"
TIMEOUT_S = 10.0


class OperatorError(Exception):
    """A mistake or a missing party, said plainly to the operator; ``code``: the command's exit
    code (``grid --help`` lists them: 3 for a party that is not there, 4 for a missing key)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _home() -> Path:
    return Path(os.environ.get("GRID_HOME", ".grid")).resolve()


def _short(hotkey: str | None) -> str:
    return f"{hotkey[:12]}…" if hotkey else "-"


def _clock(at: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) if at else "-"


def _ago(at: float | None, now: float) -> str:
    if not at:
        return "-"
    seconds = max(0, int(now - at))
    return (
        f"{seconds}s ago" if seconds < 120 else f"{seconds // 60}m ago" if seconds < 7200 else f"{seconds // 3600}h ago"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> list[str]:
    """Rows under their headers, every column as wide as its widest cell; numbers right-aligned."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str], header: bool = False) -> str:
        parts = [
            value.rjust(width) if numeric[i] and not header else value.ljust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ]
        return (indent + "  ".join(parts)).rstrip()

    return [line(headers, header=True), *(line(row) for row in cells)]


# -- miner -----------------------------------------------------------------------------------------


def _miner_target(args: argparse.Namespace) -> tuple[str, Path]:
    """The miner's HTTP root and the key to sign with: given, or the local grid's miner ``--role``."""
    from grid.local import read_state

    url = args.url
    if url is None:
        state = read_state(_home())
        if state is None:
            raise OperatorError(
                f"no grid running in {_home()}; start one with `grid up`, or pass --url and --key", code=3
            )
        miners = {miner["role"]: miner["url"] for miner in state.get("miners", [])}
        if args.role not in miners:
            raise OperatorError(f"the grid in {_home()} has no miner {args.role!r}; it has {', '.join(miners)}")
        url = miners[args.role].replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    key = Path(args.key) if args.key else _home() / "keys" / f"{args.role}.key"
    if not key.exists():
        raise OperatorError(
            f"no key file {key}: the miner's status answers only the miner's own key (--key PATH)", code=4
        )
    return url.rstrip("/"), key


def fetch_miner_status(url: str, keypair: Keypair, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """``GET URL/api/v1/status`` signed with ``keypair``.

    Raises:
        OperatorError: the miner does not answer, or refuses (its ``code`` and ``message`` quoted).
    """
    import httpx

    from protocol.requests import sign_request

    path = urlsplit(url).path.rstrip("/") + STATUS_PATH
    headers = sign_request(keypair, "GET", path, "")
    loopback = urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")
    try:
        with httpx.Client(timeout=timeout, trust_env=not loopback) as client:
            response = client.get(url + STATUS_PATH, headers=headers)
    except httpx.HTTPError as exc:
        raise OperatorError(f"no miner answers at {url}: is it running? (grid up) [{exc}]", code=3) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        detail = f"{body.get('code')}: {body.get('message')}" if isinstance(body, dict) else response.text[:200]
        raise OperatorError(f"the miner at {url} refused the status request ({response.status_code} {detail})")
    return body


def miner_report(status: dict[str, Any], url: str = "") -> str:
    """``status`` (the miner's JSON) as aligned text."""
    now = status.get("at") or time.time()
    lines = [f"miner {status.get('hotkey')}" + (f"  at {url}" if url else "")]
    validators = status.get("validators", [])
    lines.append(f"validators connected: {len(validators)}")
    if validators:
        rows = [(v["hotkey"], _clock(v["since"]), _ago(v["since"], now)) for v in validators]
        lines += table(["hotkey", "since", ""], rows)
    lines.append("executors:")
    classes = status.get("executor_classes", {})
    rows = [
        (name, c["total"], c["busy"], c["free"], c["warm"], c["warm_target"]) for name, c in sorted(classes.items())
    ]
    lines += table(["class", "total", "busy", "free", "warm", "warm target"], rows)
    ports = status.get("streaming_ports", {})
    lines.append(f"streaming ports: {ports.get('used', 0)} of {ports.get('total', 0)} in use")
    lines.append(f"receipts kept: {status.get('receipts', 0)}")
    jobs = status.get("recent_jobs", [])
    lines.append(f"recent jobs: {len(jobs)}" + (" (newest first)" if jobs else ""))
    if jobs:
        rows = [
            (
                job["job_id"],
                _short(job["validator"]),
                job["executor_class"],
                job["status"] + (f" ({job['reason']})" if job.get("reason") else ""),
                job.get("stage") or "-",
                _clock(job["started"]),
                _clock(job.get("ended")),
            )
            for job in jobs
        ]
        lines += table(["job", "validator", "class", "status", "stage", "started", "ended"], rows)
    return "\n".join(lines)


def cmd_miner_status(args: argparse.Namespace) -> int:
    try:
        url, key = _miner_target(args)
        status = fetch_miner_status(url, Keypair.load(key))
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    print(json.dumps(status, indent=2) if args.json else miner_report(status, url))
    return 0


# -- validator -------------------------------------------------------------------------------------


def fetch_validator_status(home: Path) -> dict[str, Any]:
    """The validator's overview, from ``python -m django validator_status`` on its settings.

    Raises:
        OperatorError: the command failed (no database, …), its message quoted.
    """
    env = {**os.environ, "GRID_HOME": str(home), "DJANGO_SETTINGS_MODULE": "grid.settings.validator"}
    done = subprocess.run(
        [sys.executable, "-m", "django", "validator_status"], env=env, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise OperatorError(last[0].removeprefix("CommandError: "))
    return json.loads(done.stdout)


def validator_report(status: dict[str, Any]) -> str:
    """``status`` (``validator.overview.overview()``) as aligned text."""
    now = status.get("at") or time.time()
    connector = status.get("connector", {})
    lines = [f"validator {status.get('hotkey') or '(no key)'}"]
    if connector.get("running"):
        miners = connector.get("miners", {})
        up = sum(1 for connected in miners.values() if connected)
        facilitator = "connected" if connector.get("facilitator") else "NOT connected"
        lines.append(
            f"connector: running (pid {connector.get('pid')}), facilitator {facilitator}, miners {up}/{len(miners)}"
        )
    elif "pid" in connector:
        lines.append(f"connector: not running (pid {connector['pid']} has exited): start it (grid up)")
    else:
        lines.append(f"connector: not running (no status file {connector.get('status_file')}): start it (grid up)")
    in_flight = status.get("in_flight", [])
    lines.append(f"jobs in flight: {len(in_flight)}")
    if in_flight:
        rows = [
            (j["job_id"], j["status"], j["executor_class"], _short(j["miner"]), j["attempt"], _clock(j["created"]))
            for j in in_flight
        ]
        lines += table(["job", "status", "class", "miner", "attempt", "created"], rows)
    last_hour = status.get("last_hour", {})
    counts = ", ".join(f"{name} {count}" for name, count in sorted(last_hour.items())) or "none"
    lines.append(f"jobs in the last hour: {counts}")
    miners = status.get("miners", [])
    lines.append(f"miners known: {len(miners)}")
    if miners:
        rows = [
            (
                m["hotkey"],
                "yes" if m["connected"] else "no",
                ", ".join(f"{name} {c['free']}/{c['total']} free" for name, c in sorted(m["classes"].items())) or "-",
                m["incidents_last_hour"],
                f"until {_clock(m['blacklisted_until'])}" if m.get("blacklisted_until") else "-",
                _ago(m["last_seen"], now),
            )
            for m in miners
        ]
        lines += table(["hotkey", "connected", "manifest", "incidents (1h)", "blacklisted", "last seen"], rows)
    incidents = status.get("incidents_last_hour", [])
    lines.append(f"incidents in the last hour: {len(incidents)}")
    if incidents:
        rows = [
            (_clock(i["at"]), i["kind"], _short(i["miner"]), i["job_id"] or "-", i["message"][:60]) for i in incidents
        ]
        lines += table(["at", "kind", "miner", "job", "message"], rows)
    blacklist = status.get("blacklist", [])
    lines.append(f"blacklisted miners: {len(blacklist)}")
    if blacklist:
        rows = [(e["miner"], _clock(e["until"]), e["created_by"], e["reason"][:60]) for e in blacklist]
        lines += table(["miner", "until", "by", "reason"], rows)
    scores = status.get("scores")
    if scores:
        sent = "sent to the facilitator" if scores["sent"] else "not yet sent"
        lines.append(f"latest score sheet: {_clock(scores['at'])} ({_ago(scores['at'], now)}), {sent}")
    else:
        lines.append("latest score sheet: none published yet")
    return "\n".join(lines)


def cmd_validator_status(args: argparse.Namespace) -> int:
    try:
        status = fetch_validator_status(_home())
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    print(json.dumps(status, indent=2) if args.json else validator_report(status))
    return 0 if status.get("connector", {}).get("running") else 1


# -- parsers ---------------------------------------------------------------------------------------


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """``grid miner status`` and ``grid validator status``."""
    miner = sub.add_parser("miner", help="a running miner, for its operator")
    miner_sub = miner.add_subparsers(dest="miner_command", required=True)
    status = miner_sub.add_parser("status", help="connected validators, executors busy/free per class, recent jobs")
    status.add_argument("--url", help="the miner's HTTP root (default: the local grid's miner --role)")
    status.add_argument("--key", help="the miner's own key file (default: $GRID_HOME/keys/ROLE.key)")
    status.add_argument("--role", default="miner", help="which local miner: miner, miner-1, … (default miner)")
    status.add_argument("--json", action="store_true", help="print the miner's JSON as it came")
    status.set_defaults(func=cmd_miner_status)

    validator = sub.add_parser("validator", help="the validator running here, for its operator")
    validator_sub = validator.add_subparsers(dest="validator_command", required=True)
    status = validator_sub.add_parser(
        "status", help="connections, jobs in flight, miners, incidents, blacklist, scores (its database, $GRID_HOME)"
    )
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.set_defaults(func=cmd_validator_status)
