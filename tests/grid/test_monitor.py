"""``grid monitor`` (grid/monitor/) as a process against a real grid: its JSON, its event stream,
downloads through it, and the requests and arguments it refuses.

The page itself, in a browser: tests/browser/test_monitor.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from facilitator_sdk import Client, JobSpec, Output
from grid.cli import main
from grid.local import LocalGrid
from protocol.keys import Keypair
from tests.grid.conftest import RunningMonitor, running_monitor

pytestmark = pytest.mark.slow

UNKNOWN = "00000000-0000-4000-8000-000000000000"
WRITES = (
    "import os, sys, time; d = os.environ['GRID_OUTPUT_DIR']; os.makedirs(d + '/art');"
    "open(d + '/r.txt', 'w').write('result'); open(d + '/art/a.txt', 'w').write('inline');"
    "time.sleep(1); print('to stdout'); print('to stderr', file=sys.stderr)"
)


@pytest.fixture
def monitor(job_grid: LocalGrid, client_home: Path) -> Iterator[RunningMonitor]:
    with running_monitor(client_home, job_grid.facilitator_url) as running:
        yield running


@pytest.fixture
def client(job_grid: LocalGrid, client_home: Path) -> Iterator[Client]:
    with Client(job_grid.facilitator_url, client_home / "keys" / "client.key") as client:
        yield client


def events(url: str, until: Callable[[str, dict], bool], timeout: float = 30) -> list[tuple[str, dict]]:
    """The ``(event, data)`` pairs of ``url``'s Server-Sent Events up to the first for which ``until`` holds.

    The stream is read by a thread, so that a stream that never says it fails the test in ``timeout``.
    """
    pairs: queue.Queue[tuple[str, dict]] = queue.Queue()

    def read() -> None:
        kind = ""
        # The monitor stops after the test, cutting the stream: not a failure of this thread.
        with contextlib.suppress(httpx.TransportError), httpx.stream("GET", url, timeout=timeout) as response:
            assert response.headers["content-type"] == "text/event-stream"
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    pairs.put((kind, json.loads(line.removeprefix("data: "))))

    threading.Thread(target=read, daemon=True).start()
    seen: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            seen.append(pairs.get(timeout=left))
        except queue.Empty:
            break
        if until(*seen[-1]):
            return seen
    raise AssertionError(f"{url} never sent what was awaited; it sent {seen}")


def status_is(status: str) -> Callable[[str, dict], bool]:
    return lambda kind, data: kind == "status" and data["status"] == status


def test_a_new_job_is_listed_and_its_statuses_are_pushed(monitor: RunningMonitor, client: Client):
    job = client.create_job(
        JobSpec(command=[sys.executable, "-c", WRITES], outputs=[Output.object("r.txt")], artifacts_dir="art")
    )
    pushed = events(f"{monitor.url}/events?job={job.job_id}", until=status_is("completed"))
    statuses = [data["status"] for kind, data in pushed if kind == "status"]
    assert statuses[-1] == "completed" and "accepted" in statuses
    assert all(data["job_id"] == job.job_id for _, data in pushed if data)
    deadline = time.monotonic() + 10
    while (row := _row(monitor, job.job_id)) is None or row["ran_s"] is None:
        assert time.monotonic() < deadline, "the job never showed completed with its durations"
        time.sleep(0.2)
    assert row["status"] == "completed" and row["executor_class"] == "cpu.small" and row["miner"]
    assert row["ended_at"] >= row["created_at"] and row["ran_s"] >= 1
    only_failed = httpx.get(f"{monitor.url}/api/jobs", params={"status": "failed"}).json()["jobs"]
    assert job.job_id not in [item["job_id"] for item in only_failed]

    detail = httpx.get(f"{monitor.url}/api/jobs/{job.job_id}").json()
    assert [event["status"] for event in detail["history"]][-1] == "completed"
    assert detail["reports"] == []  # the client filed none (the API's listing: tests/facilitator/test_reports.py)
    offered = {item["path"]: item["kind"] for item in detail["files"]}
    assert {"stdout", "stderr", "r.txt", "a.txt"} <= set(offered) and offered["a.txt"] == "artifact"
    for path, content in [("stdout", b"to stdout\n"), ("r.txt", b"result"), ("a.txt", b"inline")]:
        response = httpx.get(f"{monitor.url}/jobs/{job.job_id}/files/{path}")
        assert response.status_code == 200 and response.content == content, path
        assert response.headers["content-disposition"] == f'attachment; filename="{path}"'
    record = next(item for item in client.get_job(job.job_id).result.outputs if item["path"] == "r.txt")
    assert hashlib.sha256(b"result").hexdigest() == record["sha256"]


def _row(monitor: RunningMonitor, job_id: str) -> dict | None:
    jobs = httpx.get(f"{monitor.url}/api/jobs").json()["jobs"]
    return next((item for item in jobs if item["job_id"] == job_id), None)


def test_bad_requests_get_one_line_errors(monitor: RunningMonitor, client_home: Path):
    def refused(status: int, response: httpx.Response) -> str:
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"code", "message"} and "\n" not in body["message"]
        return body["message"]

    assert "unknown status 'bogus'" in refused(400, httpx.get(f"{monitor.url}/api/jobs?status=bogus"))
    assert f"no job {UNKNOWN}" in refused(404, httpx.get(f"{monitor.url}/api/jobs/{UNKNOWN}"))
    assert "no page" in refused(404, httpx.get(f"{monitor.url}/jobs/not a job id"))
    assert "no file" in refused(404, httpx.get(f"{monitor.url}/static/other.js"))
    assert "GET" in refused(405, httpx.post(f"{monitor.url}/api/jobs"))
    # A page elsewhere reaching the monitor through a name of its own (DNS rebinding) is refused.
    assert "127.0.0.1" in refused(421, httpx.get(f"{monitor.url}/api/jobs", headers={"Host": "evil.example"}))


def test_no_page_shows_the_key_and_it_listens_on_loopback_only(
    monitor: RunningMonitor, client: Client, client_home: Path
):
    job = client.run(JobSpec(command=[sys.executable, "-c", "print(1)"]), timeout=60)
    seed = (client_home / "keys" / "client.key").read_text().strip()
    for path in ["/", f"/jobs/{job.job_id}", "/api/jobs", f"/api/jobs/{job.job_id}", "/static/common.js"]:
        response = httpx.get(monitor.url + path)
        assert response.status_code == 200 and seed not in response.text, path
        assert "default-src 'self'" in response.headers["content-security-policy"]
    assert not any(seed in line for line in monitor.lines)
    port = int(monitor.url.rsplit(":", 1)[1])
    address = socket.gethostbyname(socket.gethostname())
    if address != "127.0.0.1":  # the machine has another address to try
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{address}:{port}/api/jobs", timeout=2)


def test_the_command_refuses_bad_options_in_one_line(client_home: Path, capsys: pytest.CaptureFixture[str]):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["monitor", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: port {port} is in use on 127.0.0.1: pick another with --port\n"
    assert main(["monitor", "--key", str(client_home / "missing.key")]) == 4
    assert "no key file" in capsys.readouterr().err
    for bad in (["--port", "70000"], ["--poll", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["monitor", *bad])
        assert exit_info.value.code == 2
        assert "error: argument" in capsys.readouterr().err


def test_another_key_shows_only_its_own_jobs(job_grid: LocalGrid, client: Client, client_home: Path):
    client.run(JobSpec(command=[sys.executable, "-c", "print(1)"]), timeout=60)
    other = client_home / "keys" / "other.key"
    Keypair.generate().save(other)
    with running_monitor(client_home, job_grid.facilitator_url, "--key", str(other)) as running:
        assert Keypair.load(other).hotkey in running.lines[0]
        assert httpx.get(f"{running.url}/api/jobs").json() == {"jobs": [], "error": None}


def test_a_failed_job_is_listed_with_its_reason_and_its_logs(monitor: RunningMonitor, client: Client):
    code = "import sys; print('before the end'); sys.exit(3)"
    job = client.create_job(JobSpec(command=[sys.executable, "-c", code]))
    # It may end before the monitor first lists it: then only its row comes, already failed.
    pushed = events(f"{monitor.url}/events?job={job.job_id}", until=lambda kind, data: data.get("status") == "failed")
    assert pushed[-1][1]["failure"]["reason"] == "nonzero_exit"
    failed = httpx.get(f"{monitor.url}/api/jobs?status=failed").json()["jobs"]
    assert job.job_id in [item["job_id"] for item in failed]
    row = _row(monitor, job.job_id)
    assert row["status"] == "failed" and row["done"] and row["failure"]["reason"] == "nonzero_exit"
    detail = httpx.get(f"{monitor.url}/api/jobs/{job.job_id}").json()
    assert "stdout" in {item["path"] for item in detail["files"]}
    response = httpx.get(f"{monitor.url}/jobs/{job.job_id}/files/stdout")
    assert response.status_code == 200 and response.content == b"before the end\n"
    missing = httpx.get(f"{monitor.url}/jobs/{job.job_id}/files/elsewhere.txt")
    assert missing.status_code == 404 and "has no file 'elsewhere.txt'" in missing.json()["message"]
