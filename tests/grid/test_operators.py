"""grid/operators.py's parts on their own: tables, reports, and the two fetches against real parties.

The miner's side runs against a real HTTP server on 127.0.0.1 that checks the signed request as
the miner does; the validator's side runs the real ``validator_status`` command in a subprocess,
on a real sqlite database migrated under a temporary ``$GRID_HOME``. The whole CLI against a
running grid is tests/grid/test_status_cli.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from grid.cli import main
from grid.local import STATE_FILE, free_port
from grid.operators import (
    STATUS_PATH,
    OperatorError,
    fetch_miner_status,
    fetch_validator_status,
    miner_report,
    table,
    validator_report,
)
from protocol.errors import RequestAuthError
from protocol.keys import Keypair
from protocol.requests import HEADER_HOTKEY, verify_request

NOW = 1_700_000_000.0
HOTKEY_A = "a" * 64
HOTKEY_B = "b" * 64


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


# -- table -----------------------------------------------------------------------------------------


def test_a_table_pads_every_column_to_its_widest_cell_and_right_aligns_numbers() -> None:
    lines = table(["name", "n", "note"], [("alpha", 3, "x"), ("b", 1200, "longer note")])
    assert lines == [
        "  name   n     note",
        "  alpha     3  x",
        "  b      1200  longer note",
    ]


def test_a_column_with_any_text_cell_is_left_aligned() -> None:
    assert table(["v"], [(1,), ("two",)], indent="") == ["v", "1", "two"]


def test_a_table_without_rows_is_its_header_line() -> None:
    assert table(["job", "status"], []) == ["  job  status"]


def test_table_lines_carry_no_trailing_blanks() -> None:
    lines = table(["a", "b"], [("long value", "")], indent="> ")
    assert lines == ["> a           b", "> long value"]


# -- miner_report ------------------------------------------------------------------------------------


def miner_status(**changes: Any) -> dict[str, Any]:
    status = {
        "role": "miner",
        "hotkey": HOTKEY_A,
        "at": NOW,
        "validators": [{"hotkey": HOTKEY_B, "since": NOW - 90}],
        "executor_classes": {
            "gpu.a100": {"total": 1, "free": 0, "busy": 1, "warm": 0, "warm_target": 0},
            "cpu.small": {"total": 4, "free": 3, "busy": 1, "warm": 2, "warm_target": 2},
        },
        "streaming_ports": {"used": 1, "total": 100},
        "recent_jobs": [
            {
                "job_id": "job-2",
                "validator": HOTKEY_B,
                "executor_class": "gpu.a100",
                "status": "failed",
                "stage": "execution",
                "reason": "nonzero_exit",
                "started": NOW - 30,
                "ended": NOW - 10,
            },
            {
                "job_id": "job-1",
                "validator": HOTKEY_B,
                "executor_class": "cpu.small",
                "status": "accepted",
                "stage": None,
                "reason": None,
                "started": NOW - 5,
                "ended": None,
            },
        ],
        "receipts": 12,
    }
    return {**status, **changes}


def test_miner_report_shows_validators_executors_ports_receipts_and_jobs() -> None:
    lines = miner_report(miner_status(), "http://127.0.0.1:8001").splitlines()
    assert lines[0] == f"miner {HOTKEY_A}  at http://127.0.0.1:8001"
    assert lines[1] == "validators connected: 1"
    assert lines[3].split() == [HOTKEY_B, clock(NOW - 90), "90s", "ago"]
    executors = lines.index("executors:")
    assert lines[executors + 1].split() == ["class", "total", "busy", "free", "warm", "warm", "target"]
    # classes sorted by name
    assert lines[executors + 2].split() == ["cpu.small", "4", "1", "3", "2", "2"]
    assert lines[executors + 3].split() == ["gpu.a100", "1", "1", "0", "0", "0"]
    assert "streaming ports: 1 of 100 in use" in lines
    assert "receipts kept: 12" in lines
    assert "recent jobs: 2 (newest first)" in lines
    failed = next(line for line in lines if "job-2" in line)
    assert failed.split() == [
        "job-2",
        f"{HOTKEY_B[:12]}…",
        "gpu.a100",
        "failed",
        "(nonzero_exit)",
        "execution",
        clock(NOW - 30),
        clock(NOW - 10),
    ]
    running = next(line for line in lines if "job-1" in line)
    assert running.split()[3:] == ["accepted", "-", clock(NOW - 5), "-"]


def test_miner_report_without_a_url_names_only_the_hotkey() -> None:
    assert miner_report(miner_status()).splitlines()[0] == f"miner {HOTKEY_A}"


@pytest.mark.parametrize(
    ("since", "said"),
    [(NOW - 119, "119s ago"), (NOW - 120, "2m ago"), (NOW - 7199, "119m ago"), (NOW - 7200, "2h ago")],
)
def test_ages_read_in_seconds_then_minutes_then_hours(since: float, said: str) -> None:
    lines = miner_report(miner_status(validators=[{"hotkey": HOTKEY_B, "since": since}])).splitlines()
    assert lines[3].endswith(said)


def test_a_time_ahead_of_the_miners_clock_reads_as_now() -> None:
    lines = miner_report(miner_status(validators=[{"hotkey": HOTKEY_B, "since": NOW + 5}])).splitlines()
    assert lines[3].endswith("0s ago")


def test_an_idle_miner_s_report_says_none_and_zero() -> None:
    lines = miner_report({"hotkey": HOTKEY_A, "at": NOW}).splitlines()
    assert lines == [
        f"miner {HOTKEY_A}",
        "validators connected: 0",
        "executors:",
        "  class  total  busy  free  warm  warm target",
        "streaming ports: 0 of 0 in use",
        "receipts kept: 0",
        "recent jobs: 0",
    ]


# -- fetch_miner_status, against a real HTTP server ------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class FakeMiner:
    """A miner's status endpoint: answers its own key's signed ``GET .../api/v1/status`` as the miner does."""

    keypair: Keypair
    url: str
    reply: Reply | None = None  # None: the miner's own check, then its status
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def fake_miner() -> Iterator[FakeMiner]:
    miner = FakeMiner(Keypair.generate(), "")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = dict(self.headers.items())
            miner.seen.append((self.path, headers))
            reply = miner.reply or self.check()
            time.sleep(reply.delay)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def check(self) -> Reply:
            path, _, query = self.path.partition("?")
            try:
                signed = verify_request(self.headers, "GET", path, query)  # case-insensitive, as a server's are
            except RequestAuthError as exc:
                return Reply(401, json.dumps({"code": exc.code, "message": exc.message}).encode())
            if signed.hotkey != miner.keypair.hotkey:
                refusal = {"code": "forbidden", "message": "only the miner's own key may read its status"}
                return Reply(403, json.dumps(refusal).encode())
            return Reply(200, json.dumps(miner_status(hotkey=miner.keypair.hotkey)).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    miner.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield miner
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_status_request_is_signed_with_the_operator_s_key(fake_miner: FakeMiner) -> None:
    status = fetch_miner_status(fake_miner.url, fake_miner.keypair)
    assert status["hotkey"] == fake_miner.keypair.hotkey
    ((path, headers),) = fake_miner.seen  # the server answered only after verifying the signature
    assert path == STATUS_PATH
    assert {name.lower(): value for name, value in headers.items()}[HEADER_HOTKEY.lower()] == fake_miner.keypair.hotkey


def test_a_miner_under_a_path_is_asked_and_signed_under_that_path(fake_miner: FakeMiner) -> None:
    fetch_miner_status(fake_miner.url + "/miner-1", fake_miner.keypair)
    ((path, _),) = fake_miner.seen
    assert path == "/miner-1" + STATUS_PATH  # and the server verified the signature over that path


def test_another_key_is_refused_with_the_miner_s_code_and_message(fake_miner: FakeMiner) -> None:
    with pytest.raises(OperatorError) as caught:
        fetch_miner_status(fake_miner.url, Keypair.generate())
    assert str(caught.value) == (
        f"the miner at {fake_miner.url} refused the status request"
        " (403 forbidden: only the miner's own key may read its status)"
    )


def test_a_refusal_that_is_not_json_quotes_the_start_of_its_text(fake_miner: FakeMiner) -> None:
    fake_miner.reply = Reply(502, b"Bad Gateway " + b"x" * 400, "text/plain")
    with pytest.raises(OperatorError) as caught:
        fetch_miner_status(fake_miner.url, fake_miner.keypair)
    message = str(caught.value)
    assert message.startswith(f"the miner at {fake_miner.url} refused the status request (502 Bad Gateway xxx")
    assert message.endswith("x)") and len(message) < len(fake_miner.url) + 260


@pytest.mark.parametrize("body", [b"[1, 2]", b"not json", b""])
def test_a_200_that_is_not_a_json_object_is_refused(fake_miner: FakeMiner, body: bytes) -> None:
    fake_miner.reply = Reply(200, body)
    with pytest.raises(OperatorError, match=r"refused the status request \(200 "):
        fetch_miner_status(fake_miner.url, fake_miner.keypair)


def test_no_miner_on_the_port_is_said_plainly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(OperatorError) as caught:
        fetch_miner_status(url, Keypair.generate())
    assert str(caught.value).startswith(f"no miner answers at {url}: is it running? (grid up) [")


def test_a_miner_slower_than_the_timeout_is_given_up_on(fake_miner: FakeMiner) -> None:
    fake_miner.reply = Reply(200, b"{}", delay=1.0)
    started = time.monotonic()
    with pytest.raises(OperatorError, match="no miner answers at"):
        fetch_miner_status(fake_miner.url, fake_miner.keypair, timeout=0.2)
    assert time.monotonic() - started < 0.9


def test_a_loopback_miner_is_asked_directly_past_a_configured_proxy(
    fake_miner: FakeMiner, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert fetch_miner_status(fake_miner.url, fake_miner.keypair)["hotkey"] == fake_miner.keypair.hotkey


# -- grid miner status: which miner and which key ------------------------------------------------------


def write_state(home: Path, miners: list[dict[str, str]], facilitator_pid: int | None = None) -> None:
    """A local grid's state file, its facilitator ``facilitator_pid`` (default: this live process)."""
    state = {"facilitator_url": "http://127.0.0.1:1", "miners": miners, "pids": {"facilitator": facilitator_pid}}
    if facilitator_pid is None:
        state["pids"]["facilitator"] = os.getpid()
    (home / STATE_FILE).write_text(json.dumps(state))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GRID_HOME", str(tmp_path))
    for name in ("GRID_DATABASE_URL", "GRID_VALIDATOR_STATUS_FILE", "GRID_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "keys").mkdir()
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_local_grid_s_miner_role_is_found_from_its_ws_address(
    fake_miner: FakeMiner, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = fake_miner.url.rsplit(":", 1)[1]
    write_state(
        home, [{"role": "miner", "url": "ws://127.0.0.1:1"}, {"role": "miner-1", "url": f"ws://127.0.0.1:{port}/"}]
    )
    fake_miner.keypair.save(home / "keys" / "miner-1.key")
    code, out, err = run(capsys, "miner", "status", "--role", "miner-1", "--json")
    assert code == 0, err
    assert json.loads(out)["hotkey"] == fake_miner.keypair.hotkey
    assert [path for path, _ in fake_miner.seen] == [STATUS_PATH]


def test_a_wss_miner_is_asked_over_https(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    write_state(home, [{"role": "miner", "url": f"wss://127.0.0.1:{port}"}])
    Keypair.generate().save(home / "keys" / "miner.key")
    code, _, err = run(capsys, "miner", "status")
    assert code == 3  # nothing to talk to (grid --help's exit codes)
    assert err.startswith(f"error: no miner answers at https://127.0.0.1:{port}: is it running?")


def test_a_missing_key_file_is_named(fake_miner: FakeMiner, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = home / "elsewhere.key"
    code, out, err = run(capsys, "miner", "status", "--url", fake_miner.url, "--key", str(missing))
    assert (code, out) == (4, "")
    assert err == f"error: no key file {missing}: the miner's status answers only the miner's own key (--key PATH)\n"
    assert fake_miner.seen == []


def test_a_grid_whose_facilitator_has_exited_is_not_running(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_state(home, [{"role": "miner", "url": "ws://127.0.0.1:1"}], facilitator_pid=int(done.stdout))
    code, _, err = run(capsys, "miner", "status")
    assert (code, err) == (3, f"error: no grid running in {home}; start one with `grid up`, or pass --url and --key\n")


def test_miner_status_prints_the_report_by_default(
    fake_miner: FakeMiner, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = home / "keys" / "mine.key"
    fake_miner.keypair.save(key)
    code, out, err = run(capsys, "miner", "status", "--url", fake_miner.url + "/", "--key", str(key))
    assert code == 0, err
    assert out.splitlines()[0] == f"miner {fake_miner.keypair.hotkey}  at {fake_miner.url}"
    assert "receipts kept: 12" in out.splitlines()


# -- validator_report ---------------------------------------------------------------------------------


def validator_status(**changes: Any) -> dict[str, Any]:
    status = {
        "hotkey": HOTKEY_A,
        "at": NOW,
        "connector": {
            "status_file": "/x/validator-status.json",
            "running": True,
            "pid": 1234,
            "facilitator": True,
            "miners": {HOTKEY_B: True, "c" * 64: False},
            "since": NOW - 600,
        },
        "in_flight": [
            {
                "job_id": "job-9",
                "status": "running",
                "miner": HOTKEY_B,
                "executor_class": "cpu.small",
                "attempt": 2,
                "created": NOW - 40,
            }
        ],
        "last_hour": {"failed": 1, "completed": 3},
        "miners": [
            {
                "hotkey": HOTKEY_B,
                "address": "ws://127.0.0.1:8001",
                "connected": True,
                "classes": {"gpu.a100": {"free": 0, "total": 1}, "cpu.small": {"free": 3, "total": 4}},
                "last_seen": NOW - 3,
                "incidents_last_hour": 2,
                "blacklisted_until": NOW + 300,
            }
        ],
        "incidents_last_hour": [
            {"kind": "timeout", "miner": HOTKEY_B, "job_id": None, "at": NOW - 100, "message": "m" * 80}
        ],
        "blacklist": [{"miner": HOTKEY_B, "reason": "r" * 70, "until": NOW + 300, "created_by": "validator"}],
        "scores": {"at": NOW - 180, "sent": True},
    }
    return {**status, **changes}


def test_validator_report_shows_every_section() -> None:
    lines = validator_report(validator_status()).splitlines()
    assert lines[0] == f"validator {HOTKEY_A}"
    assert lines[1] == "connector: running (pid 1234), facilitator connected, miners 1/2"
    assert lines[2] == "jobs in flight: 1"
    assert lines[4].split() == ["job-9", "running", "cpu.small", f"{HOTKEY_B[:12]}…", "2", clock(NOW - 40)]
    assert "jobs in the last hour: completed 3, failed 1" in lines
    assert "miners known: 1" in lines
    miner = next(line for line in lines if line.startswith(f"  {HOTKEY_B}"))
    assert " yes " in miner and "cpu.small 3/4 free, gpu.a100 0/1 free" in miner
    assert miner.split()[-5:] == ["2", "until", clock(NOW + 300), "3s", "ago"]
    assert "incidents in the last hour: 1" in lines
    incident = next(line for line in lines if "timeout" in line)
    assert incident.split() == [clock(NOW - 100), "timeout", f"{HOTKEY_B[:12]}…", "-", "m" * 60]
    assert "blacklisted miners: 1" in lines
    entry = lines[lines.index("blacklisted miners: 1") + 2]
    assert entry.split() == [HOTKEY_B, clock(NOW + 300), "validator", "r" * 60]
    assert lines[-1] == f"latest score sheet: {clock(NOW - 180)} (3m ago), sent to the facilitator"


def test_validator_report_of_a_quiet_validator() -> None:
    connector = {"status_file": "/x/s.json", "running": False}
    status = {"hotkey": None, "at": NOW, "connector": connector, "last_hour": {}, "scores": None}
    assert validator_report(status).splitlines() == [
        "validator (no key)",
        "connector: not running (no status file /x/s.json): start it (grid up)",
        "jobs in flight: 0",
        "jobs in the last hour: none",
        "miners known: 0",
        "incidents in the last hour: 0",
        "blacklisted miners: 0",
        "latest score sheet: none published yet",
    ]


def test_validator_report_names_the_exited_connector_s_pid_and_unsent_scores() -> None:
    connector = {"status_file": "/x/s.json", "running": False, "pid": 4321}
    lines = validator_report(validator_status(connector=connector, scores={"at": NOW, "sent": False})).splitlines()
    assert lines[1] == "connector: not running (pid 4321 has exited): start it (grid up)"
    assert lines[-1] == f"latest score sheet: {clock(NOW)} (0s ago), not yet sent"


def test_a_connector_without_its_facilitator_says_not_connected() -> None:
    connector = {**validator_status()["connector"], "facilitator": False, "miners": {}}
    lines = validator_report(validator_status(connector=connector)).splitlines()
    assert lines[1] == "connector: running (pid 1234), facilitator NOT connected, miners 0/0"


# -- fetch_validator_status, on a real database in a subprocess ---------------------------------------------


@pytest.fixture(scope="module")
def validator_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A validator's ``$GRID_HOME``: its sqlite database migrated, its key written."""
    home = tmp_path_factory.mktemp("validator")
    env = {k: v for k, v in os.environ.items() if k not in ("GRID_DATABASE_URL", "GRID_KEY_FILE")}
    env |= {"GRID_HOME": str(home), "DJANGO_SETTINGS_MODULE": "grid.settings.validator"}
    done = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    Keypair.generate().save(home / "keys" / "validator.key")
    return home


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRID_DATABASE_URL", "GRID_VALIDATOR_STATUS_FILE", "GRID_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_an_empty_validator_with_a_live_connector_is_reported(validator_home: Path, clean_env: None) -> None:
    status_file = validator_home / "validator-status.json"
    status_file.write_text(json.dumps({"pid": os.getpid(), "facilitator": True, "miners": {HOTKEY_B: True}, "at": NOW}))
    try:
        status = fetch_validator_status(validator_home)
    finally:
        status_file.unlink()
    assert status["hotkey"] == Keypair.load(validator_home / "keys" / "validator.key").hotkey
    assert status["connector"] == {
        "status_file": str(status_file),
        "running": True,
        "pid": os.getpid(),
        "facilitator": True,
        "miners": {HOTKEY_B: True},
        "since": NOW,
    }
    assert (status["in_flight"], status["last_hour"], status["miners"]) == ([], {}, [])
    assert (status["incidents_last_hour"], status["blacklist"], status["scores"]) == ([], [], None)
    lines = validator_report(status).splitlines()
    assert lines[1] == f"connector: running (pid {os.getpid()}), facilitator connected, miners 1/1"


def test_validator_status_exits_1_while_its_connector_is_down(
    validator_home: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRID_HOME", str(validator_home))
    code, out, _ = run(capsys, "validator", "status", "--json")
    assert code == 1
    assert json.loads(out)["connector"] == {
        "status_file": str(validator_home / "validator-status.json"),
        "running": False,
    }
    code, out, _ = run(capsys, "validator", "status")
    assert code == 1
    assert out.splitlines()[1].startswith("connector: not running (no status file ")


def test_no_validator_database_is_said_plainly(tmp_path: Path, clean_env: None) -> None:
    with pytest.raises(OperatorError) as caught:
        fetch_validator_status(tmp_path)
    assert str(caught.value) == (
        f"no validator database at {tmp_path / 'validator.sqlite3'}: is a validator set up here? (grid up)"
    )


def test_a_database_never_migrated_is_not_ready(tmp_path: Path, clean_env: None) -> None:
    (tmp_path / "validator.sqlite3").touch()
    with pytest.raises(OperatorError) as caught:
        fetch_validator_status(tmp_path)
    message = str(caught.value)
    assert message.startswith("the validator's database is not ready (no such table: ")
    assert message.endswith("): is a validator set up here?")
