"""The fault-injection harness: a real local grid, jobs held at a chosen stage, processes killed.

A *probe job* (process runtime) fetches an input from a loopback web server, appends a line to a
run log (one line per run: how many times it really ran), sleeps, then writes two outputs: one to
the grid's store, one PUT to the web server. Whichever stage a test wants to hit is made slow:
the input answers late (``download``), the job sleeps (``execution``), the PUT answers late
(``upload``). :meth:`FaultGrid.hold` submits a probe and returns once it is in that stage; the
test then kills what it wants (:meth:`FaultGrid.kill`, by signal and pid), restarts it, and
:meth:`FaultGrid.settle` waits for the end and checks the promises every job keeps:

* it ended in a terminal status with a reason (a failure's reason, or completed);
* its history is well ordered (attempts never go back; within one attempt statuses only move
  forward and the terminal one is last);
* it ran at most once per attempt that started it (the run log);
* completed means its outputs are stored whole: the store's object downloads with the digest
  and size the result claims, and the web server holds the PUT.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from facilitator_sdk import Client, Input, JobSpec, Output
from facilitator_sdk.errors import GridError
from grid.local import LocalGrid, free_port
from protocol.status import JobStatus
from tests.executor.httpserver import Server
from tests.integration.conftest import RUNNING, find_process, holds_a_file, parent_of, pid_alive

# The order statuses of one attempt move in (DESIGN.md §3); terminal statuses come last.
ORDER = [
    JobStatus.SENT,
    JobStatus.RECEIVED,
    JobStatus.ACCEPTED,
    JobStatus.EXECUTOR_READY,
    JobStatus.VOLUMES_READY,
    JobStatus.STREAMING_READY,
    JobStatus.EXECUTION_DONE,
]
RANK = {status.value: n for n, status in enumerate(ORDER)}
HOLD_S = 4.0  # how long the held stage lasts: long enough to kill something in it
STAGES = ("download", "execution", "upload")

PROBE = """
import os, sys, time
token, runlog, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
data = open(os.path.join(os.environ["GRID_INPUT_DIR"], "in.txt")).read()
with open(runlog, "a") as log:
    log.write(token + " " + str(os.getpid()) + "\\n")
time.sleep(hold)
out = os.environ["GRID_OUTPUT_DIR"]
open(os.path.join(out, "stored.txt"), "w").write(token + " " + data)
open(os.path.join(out, "put.txt"), "w").write(token)
print("done", token)
"""


@dataclass
class Probe:
    """One probe job: its token (in its command line, its run log lines and its outputs) and id."""

    token: str
    job_id: str
    stage: str
    history: list[dict[str, Any]] = field(default_factory=list)


class CuttableLink:
    """A TCP proxy on loopback between the validator and a server (the facilitator, a miner)
    that a test can break.

    ``swallow()`` makes it drop what the validator sends while the connection stays up: the
    frames are written, as to a server that took them into its socket and died before it read
    them (``swallow(to_validator=True)``: what the server sends). ``cut()`` then closes every
    connection (and forwards again), and the validator reconnects through it.
    """

    def __init__(self) -> None:
        self.target_port = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.swallowing = threading.Event()
        self.swallowing_to_validator = threading.Event()
        self.swallowed = 0
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_validator: bool) -> None:
        try:
            while data := source.recv(65536):
                if (self.swallowing if from_validator else self.swallowing_to_validator).is_set():
                    self.swallowed += len(data)
                    continue
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def swallow(self, *, to_validator: bool = False) -> None:
        (self.swallowing_to_validator if to_validator else self.swallowing).set()

    def cut(self) -> None:
        with self.lock:
            connections, self.connections = self.connections, []
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.swallowing.clear()
        self.swallowing_to_validator.clear()

    def close(self) -> None:
        self.listener.close()
        self.cut()


class FaultGrid:
    """A local grid (facilitator, validator, two miners) plus the web server and run log of probes."""

    def __init__(self, home: Path, web: Server, validator_env: dict[str, str] | None = None, **extra_env: str) -> None:
        self.home = home
        self.web = web
        self.runlog = home / "runlog"
        self.link = CuttableLink()  # the validator reaches the facilitator's websocket through it
        facilitator_port = self.link.target_port = free_port()
        self.miner_link = CuttableLink()  # and the first miner's through this one (it announces it)
        miner_ports = [free_port(), free_port()]
        self.miner_link.target_port = miner_ports[0]
        self.grid = LocalGrid(
            home,
            facilitator_port=facilitator_port,
            miner_port=0,
            miner_ports=miner_ports,
            miner_env=[{"GRID_MINER_ADDRESS": f"ws://127.0.0.1:{self.miner_link.port}"}],
            executor_classes="cpu.small:2:1",
            miners=2,  # a job whose miner dies is retried on the other
            validator_env=validator_env or {},
            extra_env={
                "GRID_REDELIVER_S": "0.5",
                "GRID_EXECUTOR_ALLOW_PRIVATE_URLS": "1",
                "GRID_EXECUTOR_SWEEP_S": "1",  # leftovers of killed executors go within a second
                "GRID_FACILITATOR_URL": f"ws://127.0.0.1:{self.link.port}/ws/validator/",
                **extra_env,
            },
        )
        self.client_key = home / "client.key"

    def start(self) -> FaultGrid:
        self.grid.start(timeout=60)
        RUNNING.append(self.grid)
        self.web.route("/in", b"input\n")
        self.web.route("/out", status=200)
        return self

    def stop(self) -> None:
        self.grid.stop()
        self.link.close()
        self.miner_link.close()

    @property
    def linked_miner(self) -> str:
        """The hotkey of the miner the validator reaches through :attr:`miner_link`."""
        return self.grid.keys["miner"].hotkey

    @contextmanager
    def client(self) -> Iterator[Client]:
        with Client(self.grid.facilitator_url, self.client_key) as client:
            yield client

    # -- probes ---------------------------------------------------------------------------------

    def spec(self, token: str, stage: str, *, store: bool = True, **options: Any) -> JobSpec:
        """A probe held at ``stage``; ``store=False`` leaves out the output to the grid's store
        (the facilitator's), for tests that freeze the facilitator."""
        slow = {"download": "/in-slow", "upload": "/out-slow"}
        self.web.route("/in-slow", b"input\n", delay=HOLD_S)
        self.web.route("/out-slow", status=200, delay=HOLD_S)
        input_path = slow["download"] if stage == "download" else "/in"
        put_path = slow["upload"] if stage == "upload" else "/out"
        hold = HOLD_S if stage == "execution" else 0.0
        options.setdefault("timing", {"execution": 60, "download": 30, "upload": 30})
        return JobSpec(
            command=[sys.executable, "-c", PROBE, token, str(self.runlog), str(hold)],
            inputs=[Input.url("in.txt", self.web.url(input_path))],
            outputs=[
                *([Output.object("stored.txt")] if store else []),
                Output.url("put.txt", self.web.url(put_path) + f"?{token}"),
            ],
            **options,
        )

    def hold(self, stage: str, **options: Any) -> Probe:
        """Submit a probe and return once it is in ``stage`` (its slow part is under way)."""
        token = f"probe-{uuid.uuid4().hex[:12]}"
        before = {path: self.web.hits[path] for path in ("/in-slow", "/out-slow")}
        with self.client() as client:
            job = client.create_job(self.spec(token, stage, **options))
        probe = Probe(token, job.job_id, stage)
        deadline = time.monotonic() + 60
        while not self.in_stage(probe, before):
            assert time.monotonic() < deadline, f"probe never reached {stage}: {self.fetch(probe.job_id)}"
            time.sleep(0.05)
        return probe

    def in_stage(self, probe: Probe, before: dict[str, int]) -> bool:
        if probe.stage == "download":
            return self.web.hits["/in-slow"] > before["/in-slow"]
        if probe.stage == "upload":
            return self.web.hits["/out-slow"] > before["/out-slow"]
        return find_process(probe.token) is not None and self.runs(probe) > 0

    def runs(self, probe: Probe) -> int:
        if not self.runlog.exists():
            return 0
        return sum(1 for line in self.runlog.read_text().splitlines() if line.split()[0] == probe.token)

    # -- processes ------------------------------------------------------------------------------

    def pid(self, role: str) -> int:
        """The pid of a role's process, or of the probe's executor or job (``executor:TOKEN``)."""
        if role.startswith(("executor:", "job:")):
            kind, token = role.split(":", 1)
            job = find_process(token)
            if kind == "job":
                assert job is not None, "the probe's process is not running"
                return job
            if job is not None:
                return parent_of(job)
            # Between its job's runs (downloading, uploading): the executor whose job directory holds
            # a file (the input being fetched, the outputs being sent). Idle executors keep theirs, empty.
            live = [pid for pid, root in self.job_dirs() if pid_alive(pid) and holds_a_file(root)]
            assert len(live) == 1, f"expected one running executor with files in its job directory, found {live}"
            return live[0]
        if role.startswith("miner:"):
            return self.pid(self.miner_of(role.split(":", 1)[1]))
        return self.grid.processes[role].pid

    def job_dirs(self) -> list[tuple[int, Path]]:
        """Every job directory of the grid's miners, with the pid of the executor that made it."""
        return [(int(path.name.split("-")[1]), path) for path in self.grid.home.glob("work*/job-*-*")]

    def orphaned_job_dirs(self) -> list[int]:
        """The (dead) executor pid of every job directory whose executor is gone: the sweep's to remove."""
        return [pid for pid, _ in self.job_dirs() if not pid_alive(pid)]

    def miner_of(self, token: str) -> str:
        """The miner role whose process runs the probe's executor (its ancestor)."""
        pids = {process.pid: role for role, process in self.grid.processes.items()}
        pid = self.pid(f"executor:{token}")
        while pid > 1:
            if pid in pids:
                return pids[pid]
            pid = parent_of(pid)
        raise AssertionError(f"no miner runs probe {token}")

    def kill(self, role: str, sig: int = signal.SIGKILL) -> None:
        """Signal a process: a role (its process group is left alone: children die by their own means)."""
        os.kill(self.pid(role), sig)

    def restart(self, role: str, *, after: float = 0.0) -> None:
        """Kill a role with SIGKILL (if it still runs), wait ``after`` seconds, start it again."""
        self.grid.stop_role(role, sig=signal.SIGKILL)
        time.sleep(after)
        self.grid.start_role(role)

    # -- the end --------------------------------------------------------------------------------

    def fetch(self, job_id: str) -> dict[str, Any]:
        """The facilitator's record of a job (retried while the facilitator restarts)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                with self.client() as client:
                    job = client.get_job(job_id)
                return {
                    "status": job.status,
                    "attempt": job.attempt,
                    "failure": job.failure,
                    "result": job._result,
                    "history": job.history,
                }
            except (httpx.HTTPError, GridError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def settle(self, probe: Probe, timeout: float = 90.0) -> dict[str, Any]:
        """Wait for the probe's end, then check every promise; return the facilitator's record."""
        deadline = time.monotonic() + timeout
        while not JobStatus((record := self.fetch(probe.job_id))["status"]).is_terminal:
            assert time.monotonic() < deadline, f"job {probe.job_id} never ended: {record}"
            time.sleep(0.2)
        time.sleep(0.3)  # late duplicates, if any, would land now
        record = self.fetch(probe.job_id)
        probe.history = record["history"]
        assert_well_ordered(record["history"])
        started = {event["attempt"] for event in record["history"] if event["status"] == "volumes_ready"}
        runs = self.runs(probe)
        assert runs <= max(len(started), 1), f"ran {runs} times in {len(started)} started attempts"
        if record["status"] == "completed":
            self.assert_outputs_stored(probe, record)
        else:
            assert record["failure"] and record["failure"].get("reason"), record
        return record

    def assert_outputs_stored(self, probe: Probe, record: dict[str, Any]) -> None:
        outputs = {output["path"]: output for output in record["result"]["outputs"]}
        assert probe.token.encode() in self.web.bodies("/out-slow" if probe.stage == "upload" else "/out")
        stored = outputs.get("stored.txt")
        if stored is None:
            return  # a probe without a store output
        with self.client() as client:
            job = client.get_job(probe.job_id)
            path = job.result.download("stored.txt", self.home / f"{probe.token}.txt")
        body = path.read_bytes()
        assert body == f"{probe.token} input\n".encode()
        assert (hashlib.sha256(body).hexdigest(), len(body)) == (stored["sha256"], stored["size"])


def assert_well_ordered(history: list[dict[str, Any]]) -> None:
    """Attempts never go back; within one, statuses only move forward and a terminal one ends it."""
    attempt, rank, ended = 0, -1, False
    for event in history:
        status = event["status"]
        if event["attempt"] > attempt:
            attempt, rank, ended = event["attempt"], -1, False
        assert event["attempt"] == attempt or status == "sent", f"attempt went back at {event}: {history}"
        assert not ended, f"{status} after the end of attempt {attempt}: {history}"
        if JobStatus(status).is_terminal:
            ended = True
            continue
        assert RANK[status] > rank, f"{status} after a later status in attempt {attempt}: {history}"
        rank = RANK[status]
