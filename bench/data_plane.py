"""The data plane: big objects through the SDK and the facilitator's store, and docker job overhead.

Run from the repository root::

    .venv/bin/python bench/data_plane.py [--size-mb 1024 --repeats 3 --jobs 30 --warmup 2 --skip-docker --strict]

In one invocation it measures, on loopback only, each figure next to its baseline:

* **Upload and download of one object** (``--size-mb`` MiB of random bytes), ``--repeats`` times each,
  SDK and baseline alternating, ``os.sync()`` before every transfer: ``Client.upload(path)`` into the
  facilitator's local store, and ``job.result.download`` of the same bytes (a process job links its
  input to an object output, so the file the client downloads is a job output in the store, served by
  the facilitator at ``/objects/``). Baseline: a plain HTTP/1.1 server (``http.server`` in its own
  process) and ``http.client``, streaming 1 MiB chunks and doing the same integrity work as the grid
  (sha256 on both sides, ``fsync`` of what is stored, downloads written to a temporary file and moved
  into place).
* **The facilitator's peak RSS** while it serves the download: ``VmHWM`` after resetting it through
  ``/proc/<pid>/clear_refs``, on a facilitator restarted after the uploads (what they left in its heap
  is reported apart), against a budget (``--rss-budget-mb``, 200). Also its CPU time and the bytes it
  wrote to files (``/proc/<pid>/io``) per transfer.
* **Container start-to-exit** of a trivial docker job (``gridtest/busybox:latest``, ``true``):
  ``execution_done.at - volumes_ready.at`` in the job's history, vs ``docker run --rm --network none
  gridtest/busybox:latest true`` from the command line (medians over ``--jobs`` each).
* **Whole-chain latency** of that trivial docker job with warm executors (``cpu.small:2:2``, the image
  preloaded): p50/p90 over ``--jobs`` sequential ``AsyncClient.run`` after ``--warmup`` jobs, next to
  the same chain with the process runtime (``command=["true"]``) on the data-plane grid.

The docker part uses the private engine of ``scripts/docker_engine.sh`` (started if it does not answer)
and builds the busybox test image if it is missing (``scripts/build_test_images.sh busybox``).
MiB everywhere: ``size_mb``, the ``*_mb_s`` throughputs and the ``*_mb`` sizes are in units of 2**20 bytes.
Progress goes to stderr; the figures, the ratios and how to reproduce go to stdout, and the last
line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import io
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/data_plane.py` puts bench/ first, not the repo

from bench.common import (  # noqa: E402
    STARTED,
    bench_parser,
    changed_options,
    cpu_seconds,
    dump_logs,
    log,
    median,
    percentile,
    r,
    run_dir,
    start_run,
    status_kb,
    stop_process,
    table,
)
from grid.local import free_port  # noqa: E402

MiB = 1024 * 1024
CHUNK = MiB  # the SDK's and the store's chunk size
DOCKER_IMAGE = "gridtest/busybox:latest"
BASELINE_SERVER_FLAG = "--baseline-server"  # internal: this file run as the baseline's HTTP server


# -- processes: memory and CPU from /proc -----------------------------------------------------------


def reset_peak_rss(pid: int) -> bool:
    """Reset ``VmHWM`` to the current RSS (``echo 5 > /proc/<pid>/clear_refs``, Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def written_bytes(pid: int) -> int:
    """Bytes the process has written to files so far (``write_bytes`` of ``/proc/<pid>/io``: page cache
    dirtied, temporary files included), 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/io") as fh:
            for line in fh:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class RssSampler:
    """``VmRSS`` of one process every ``interval`` seconds in a thread: its maximum, in kB."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.max_kb = status_kb(pid, "VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.max_kb = max(self.max_kb, status_kb(self.pid, "VmRSS"))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.max_kb = max(self.max_kb, status_kb(self.pid, "VmRSS"))


@dataclass
class Transfer:
    """One timed transfer: wall time, and when the last byte left the sender (uploads)."""

    seconds: float = math.nan
    body_sent_s: float = math.nan  # from the start until the client had handed out the last byte
    server_cpu_s: float = math.nan
    client_cpu_s: float = math.nan
    server_peak_rss_kb: int = 0
    server_rss_before_kb: int = 0
    server_sampled_peak_kb: int = 0
    server_written: int = 0  # bytes the server wrote to files during the transfer

    def mib_s(self, size: int) -> float:
        return size / MiB / self.seconds if self.seconds else math.nan


class Timed:
    """Measures a transfer: wall time, server CPU and peak RSS (``VmHWM`` reset first), client CPU."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.result = Transfer()

    def __enter__(self) -> Timed:
        self.result.server_rss_before_kb = status_kb(self.pid, "VmRSS")
        self._reset = reset_peak_rss(self.pid)
        self._sampler = RssSampler(self.pid).__enter__()
        self._cpu = cpu_seconds(self.pid)
        self._written = written_bytes(self.pid)
        self._client_cpu = time.process_time()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.result.seconds = time.perf_counter() - self.started
        self.result.client_cpu_s = time.process_time() - self._client_cpu
        self.result.server_cpu_s = cpu_seconds(self.pid) - self._cpu
        self.result.server_written = written_bytes(self.pid) - self._written
        self._sampler.__exit__()
        self.result.server_sampled_peak_kb = self._sampler.max_kb
        # Without a reset, VmHWM is the peak since the process started: use the sampled maximum.
        self.result.server_peak_rss_kb = status_kb(self.pid, "VmHWM") if self._reset else self._sampler.max_kb


class LastByteFile(io.FileIO):
    """A file read by the SDK as any other; it notes when its last byte was read (handed to the socket)."""

    last_byte_at: float = math.nan

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        if data and self.tell() >= os.fstat(self.fileno()).st_size:
            self.last_byte_at = time.perf_counter()
        return data


def make_file(path: Path, size: int) -> str:
    """``size`` random bytes (incompressible) written in 8 MiB pieces; their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        remaining = size
        while remaining > 0:
            block = os.urandom(min(8 * MiB, remaining))
            digest.update(block)
            fh.write(block)
            remaining -= len(block)
    return digest.hexdigest()


# -- the baseline: plain HTTP over loopback ---------------------------------------------------------


class BaselineHandler(BaseHTTPRequestHandler):
    """``PUT /obj`` streams the body to disk (sha256, fsync, atomic rename) and answers its size and
    sha256, like the store; ``GET /obj`` streams the file back in 1 MiB chunks."""

    protocol_version = "HTTP/1.1"
    root: Path = Path()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_PUT(self) -> None:
        remaining = int(self.headers["Content-Length"])
        digest, size = hashlib.sha256(), 0
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        fd, temp = tempfile.mkstemp(dir=self.root, prefix="put-")
        with os.fdopen(fd, "wb") as fh:
            while remaining > 0:
                got = self.rfile.readinto(view[: min(CHUNK, remaining)])
                if not got:
                    break
                digest.update(view[:got])
                fh.write(view[:got])
                size += got
                remaining -= got
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, self.root / "obj")
        self._answer(200, json.dumps({"key": "obj", "size": size, "sha256": digest.hexdigest()}).encode())

    def do_GET(self) -> None:
        path = self.root / "obj"
        with open(path, "rb") as fh:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(os.fstat(fh.fileno()).st_size))
            self.end_headers()
            while chunk := fh.read(CHUNK):
                self.wfile.write(chunk)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve_baseline(root: str, port: str) -> int:
    """The baseline server's process: ``python bench/data_plane.py --baseline-server ROOT PORT``."""
    BaselineHandler.root = Path(root)
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), BaselineHandler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    return 0


def baseline_put(port: int, source: Path, size: int) -> tuple[dict, float]:
    """Stream the file (hashing it, as the SDK does) in 1 MiB chunks; the answer and the last-byte time."""
    digest = hashlib.sha256()
    sent_at = [math.nan]

    def body():
        with open(source, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                yield chunk
        sent_at[0] = time.perf_counter()

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        conn.request("PUT", "/obj", body=body(), headers=headers)
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    if response.status != 200 or answer["sha256"] != digest.hexdigest() or answer["size"] != size:
        raise RuntimeError(f"baseline PUT: {response.status} {answer}")
    return answer, sent_at[0]


def baseline_get(port: int, dest: Path, sha256: str, size: int) -> None:
    """Stream the object to a temporary file beside ``dest`` (hashing it), moved into place if right."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    digest, received = hashlib.sha256(), 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    fd, temp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        conn.request("GET", "/obj")
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"baseline GET: {response.status}")
        with os.fdopen(fd, "wb") as fh:
            while got := response.readinto(view):
                digest.update(view[:got])
                fh.write(view[:got])
                received += got
        if digest.hexdigest() != sha256 or received != size:
            raise RuntimeError(f"baseline GET: got {received} bytes, sha256 {digest.hexdigest()}")
        os.replace(temp, dest)
    finally:
        conn.close()
        Path(temp).unlink(missing_ok=True)


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the baseline server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the baseline server did not listen within {timeout:g}s") from None
            time.sleep(0.05)


def settle_disk() -> None:
    """Write back what earlier steps left dirty, so that no transfer pays for another's writeback."""
    os.sync()


class BaselineServer:
    """The baseline's HTTP server in its own process (as the facilitator is), for the whole data-plane part."""

    def __init__(self, workdir: Path) -> None:
        self.root = workdir / "baseline-store"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> BaselineServer:
        self.root.mkdir()
        command = [sys.executable, str(Path(__file__).resolve()), BASELINE_SERVER_FLAG, str(self.root), str(self.port)]
        log(f"baseline: plain HTTP server (http.server, its own process) on 127.0.0.1:{self.port}")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        STARTED.append(self.process)
        wait_for_port(self.port, self.process)
        warm = self.root.parent / "warm"
        warm.write_bytes(b"warm-up")  # one tiny round trip first, as for the grid
        baseline_put(self.port, warm, 7)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process, "the baseline server")
        shutil.rmtree(self.root, ignore_errors=True)

    def put(self, source: Path, size: int) -> Transfer:
        assert self.process is not None
        with Timed(self.process.pid) as timed:
            _, sent_at = baseline_put(self.port, source, size)
        timed.result.body_sent_s = sent_at - timed.started
        return timed.result

    def get(self, dest: Path, sha256: str, size: int) -> Transfer:
        assert self.process is not None
        with Timed(self.process.pid) as timed:
            baseline_get(self.port, dest, sha256, size)
        return timed.result


def summarize(runs: list[Transfer]) -> Transfer:
    """Medians of the times and CPU, the highest peak RSS, the RSS before the first run."""

    def med(name: str) -> float:
        values = [getattr(run, name) for run in runs if not math.isnan(getattr(run, name))]
        return median(values)

    return Transfer(
        seconds=med("seconds"),
        body_sent_s=med("body_sent_s"),
        server_cpu_s=med("server_cpu_s"),
        client_cpu_s=med("client_cpu_s"),
        server_peak_rss_kb=max(run.server_peak_rss_kb for run in runs),
        server_rss_before_kb=runs[0].server_rss_before_kb,
        server_sampled_peak_kb=max(run.server_sampled_peak_kb for run in runs),
        server_written=int(med("server_written")),
    )


# -- Gridmarket: a local grid -----------------------------------------------------------------------


def start_grid(home: Path, label: str, executors: str, runtime: str, extra_env: dict[str, str]) -> Any:
    from grid.local import LocalGrid

    grid = LocalGrid(
        home=home,
        facilitator_port=free_port(),
        miner_port=free_port(),
        executor_classes=executors,
        runtime=runtime,
        extra_env={"GRID_EXECUTOR_WORK_ROOT": str(home / "work"), **extra_env},
    )
    STARTED.append(grid)
    log(f"{label}: starting a local grid in {home} ({runtime} runtime, executors {executors}) …")
    started = time.perf_counter()
    try:
        grid.start(timeout=60)
    except Exception:
        dump_logs(home / "logs")
        raise
    log(f"{label}: ready in {time.perf_counter() - started:.1f}s at {grid.facilitator_url}")
    return grid


def restart_facilitator(grid: Any) -> int:
    """A fresh facilitator process on the same home and port (the store and the jobs persist); its pid."""
    grid.stop_role("facilitator")
    grid.start_role("facilitator")
    grid.write_state()
    grid.wait_ready(60)  # the validator has reconnected too
    return grid.processes["facilitator"].pid


async def measure_chain(url: str, key_path: Path, spec: Any, label: str, jobs: int, warmup: int) -> tuple[list, list]:
    """``jobs`` sequential ``AsyncClient.run(spec)`` (one event stream) after ``warmup``: latencies, jobs."""
    from facilitator_sdk import AsyncClient

    latencies: list[float] = []
    measured: list[Any] = []
    async with AsyncClient(url, key_path) as client:
        log(f"{label}: {warmup} warm-up jobs, then {jobs} sequential jobs")
        for index in range(warmup + jobs):
            started = time.perf_counter()
            job = await client.run(spec, timeout=60)
            elapsed = time.perf_counter() - started
            if index >= warmup:
                latencies.append(elapsed)
                measured.append(job)
                done = index + 1 - warmup
                if done % max(1, jobs // 5) == 0 or done == jobs:
                    log(f"  {label}: {done}/{jobs}")
        # The stored history (stamped by the validator), outside the timed part.
        histories = [await client.get_job(job.job_id) for job in measured]
    return latencies, histories


def sdk_upload(client: Any, pid: int, source: Path, sha256: str, size: int) -> tuple[Transfer, Any]:
    with LastByteFile(source, "rb") as fh, Timed(pid) as timed:
        ref = client.upload(fh, filename="big")
    timed.result.body_sent_s = fh.last_byte_at - timed.started
    if ref.sha256 != sha256 or ref.size != size:
        raise RuntimeError(f"the store holds other bytes: {ref}")
    return timed.result, ref


def sdk_download(job: Any, pid: int, dest: Path, size: int) -> Transfer:
    with Timed(pid) as timed:
        job.result.download("big", dest)  # checks size and sha256 against the job's result
    if dest.stat().st_size != size:
        raise RuntimeError("the downloaded file has the wrong size")
    return timed.result


def describe(who: str, what: str, t: Transfer, size: int) -> str:
    text = f"{who}: {what} {t.seconds:.2f}s ({t.mib_s(size):.0f} MiB/s"
    if not math.isnan(t.body_sent_s):
        text += f"; last byte sent after {t.body_sent_s:.2f}s"
    return text + f"; server peak RSS {t.server_peak_rss_kb / 1024:.0f} MiB)"


def run_data_plane(workdir: Path, args: argparse.Namespace, source: Path, sha256: str, size: int) -> dict[str, Any]:
    """Uploads then downloads, SDK and baseline alternating (``--repeats`` rounds), then the process chain."""
    from facilitator_sdk import Client, Input, JobSpec, Output
    from protocol.spec import JobTiming

    home = workdir / "grid"
    limit = str(2 * size + 64 * MiB)
    extra = {"GRID_EXECUTOR_MAX_INPUT": limit, "GRID_EXECUTOR_MAX_UPLOAD": limit}
    out: dict[str, Any] = {"upload": [], "baseline_upload": [], "download": [], "baseline_download": []}
    out["rss_after_uploads_kb"] = []
    with BaselineServer(workdir) as baseline:
        grid = start_grid(home, "grid", "cpu.small:2:2", "process", extra)
        try:
            pid = grid.processes["facilitator"].pid
            key = home / "keys" / "client.key"
            # Timeouts are per read/write: the store answers a PUT only once it holds the whole object.
            with Client(grid.facilitator_url, key, timeout=600) as client:
                client.upload(b"warm-up", filename="warm")  # first request: Django's URL resolving etc.
                out["rss_idle_kb"] = status_kb(pid, "VmRSS")
                log(f"facilitator RSS at rest: {out['rss_idle_kb'] / 1024:.0f} MiB")
                ref = None
                for round_ in range(args.repeats):
                    for who in ("baseline", "sdk") if round_ % 2 == 0 else ("sdk", "baseline"):
                        settle_disk()
                        if who == "sdk":
                            log(f"grid: client.upload of {size / MiB:.0f} MiB ({round_ + 1}/{args.repeats}) …")
                            transfer, ref = sdk_upload(client, pid, source, sha256, size)
                            out["upload"].append(transfer)
                            out["rss_after_uploads_kb"].append(status_kb(pid, "VmRSS"))
                            log(describe("grid", "upload", transfer, size))
                            log(f"grid: facilitator RSS after it {out['rss_after_uploads_kb'][-1] / 1024:.0f} MiB")
                        else:
                            log(f"baseline: PUT of {size / MiB:.0f} MiB ({round_ + 1}/{args.repeats}) …")
                            out["baseline_upload"].append(baseline.put(source, size))
                            log(describe("baseline", "PUT", out["baseline_upload"][-1], size))

                # The client downloads a job's object output: the SDK's download path end to end.
                log("grid: a process job links its input to an object output (executor fetch + upload; not timed) …")
                inside = 'ln "$GRID_INPUT_DIR/big" "$GRID_OUTPUT_DIR/" || cp "$GRID_INPUT_DIR/big" "$GRID_OUTPUT_DIR/"'
                spec = JobSpec(
                    command=["sh", "-c", inside],
                    inputs=[Input.object("big", ref)],
                    outputs=[Output.object("big")],
                    timing=JobTiming(download=900, execution=300, upload=900),
                )
                started = time.perf_counter()
                job = client.run(spec, timeout=1800)
                out["copy_job_s"] = time.perf_counter() - started
                job_id = job.job_id
                record = next(item for item in job.result.outputs if item["path"] == "big")
                if record["sha256"] != sha256 or record["size"] != size:
                    raise RuntimeError(f"the job's output is not the object: {record}")
                log(f"grid: the job took {out['copy_job_s']:.1f}s (fetch {size / MiB:.0f} MiB, run, upload it back)")
                out["rss_after_job_kb"] = status_kb(pid, "VmRSS")

            # What the uploads left in the facilitator's heap would count against the download: restart it.
            log(f"grid: restarting the facilitator (RSS {out['rss_after_job_kb'] / 1024:.0f} MiB after the uploads)")
            pid = restart_facilitator(grid)
            with Client(grid.facilitator_url, key, timeout=600) as client:
                job = client.get_job(job_id)
                out["rss_fresh_kb"] = status_kb(pid, "VmRSS")
                dest = workdir / "downloaded"
                for round_ in range(args.repeats):
                    for who in ("baseline", "sdk") if round_ % 2 == 0 else ("sdk", "baseline"):
                        dest.unlink(missing_ok=True)
                        settle_disk()
                        if who == "sdk":
                            log(f"grid: job.result.download of {size / MiB:.0f} MiB ({round_ + 1}/{args.repeats}) …")
                            out["download"].append(sdk_download(job, pid, dest, size))
                            log(describe("grid", "download", out["download"][-1], size))
                        else:
                            log(f"baseline: GET of {size / MiB:.0f} MiB ({round_ + 1}/{args.repeats}) …")
                            out["baseline_download"].append(baseline.get(dest, sha256, size))
                            log(describe("baseline", "GET", out["baseline_download"][-1], size))
                dest.unlink(missing_ok=True)

            # The process runtime's chain with the same client and warm executors: context for docker's.
            latencies, _ = asyncio.run(
                measure_chain(
                    grid.facilitator_url, key, JobSpec(command=["true"]), "process chain", args.jobs, args.warmup
                )
            )
            out["process_chain"] = latencies
            return out
        except Exception:
            dump_logs(home / "logs")
            raise
        finally:
            log("grid: stopping")
            grid.stop()


# -- docker -----------------------------------------------------------------------------------------


def docker_engine() -> str:
    """The private engine's DOCKER_HOST (started if not answering), with the busybox test image built."""
    scripts = ROOT / "scripts"
    log("docker: scripts/docker_engine.sh (starts the private engine if it does not answer) …")
    done = subprocess.run([str(scripts / "docker_engine.sh")], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/docker_engine.sh failed:\n{done.stderr[-2000:]}\n(or run with --skip-docker)")
    host = done.stdout.strip().splitlines()[-1]
    env = {**os.environ, "DOCKER_HOST": host}
    done = subprocess.run(
        [str(scripts / "build_test_images.sh"), "busybox"], capture_output=True, text=True, env=env, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/build_test_images.sh busybox failed:\n{done.stderr[-2000:]}")
    log(f"docker: engine at {host}, {DOCKER_IMAGE} present")
    return host


def docker_run_times(host: str, runs: int, options: list[str]) -> list[float]:
    """Wall times of ``docker run --rm <options> busybox true`` (one uncounted run first)."""
    command = ["docker", "run", "--rm", *options, DOCKER_IMAGE, "true"]
    env = {**os.environ, "DOCKER_HOST": host}
    times = []
    for index in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}: {done.stderr[-500:]}")
        if index:
            times.append(elapsed)
    return times


def runtime_like_options(workdir: Path) -> list[str]:
    """The isolation the docker runtime gives a job with the default limits (executor/runtimes/docker.py)."""
    volume, output = workdir / "volume", workdir / "output"
    volume.mkdir(exist_ok=True)
    output.mkdir(exist_ok=True)
    return [
        "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=512m,mode=1777",
        "--user", "65534:65534", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--memory", "512m", "--memory-swap", "512m", "--cpus", "1", "--pids-limit", "64", "--log-driver", "none",
        "-v", f"{volume}:/volume:ro", "-v", f"{output}:/output:rw",
    ]  # fmt: skip


def container_times(jobs: list[Any]) -> tuple[list[float], list[float]]:
    """Per job: ``execution_done.at - volumes_ready.at`` (validator's clock) and the runtime's ``duration_s``."""
    spans, durations = [], []
    for job in jobs:
        at = {event["status"]: event["at"] for event in job.history if event.get("attempt", 1) == job.attempt}
        if "volumes_ready" in at and "execution_done" in at:
            spans.append(at["execution_done"] - at["volumes_ready"])
        if job.result is not None:
            durations.append(job.result.duration_s)
    return spans, durations


def run_docker(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from facilitator_sdk import JobSpec

    host = docker_engine()
    out: dict[str, Any] = {"docker_host": host}
    log(f"docker: {args.jobs} × docker run --rm --network none {DOCKER_IMAGE} true")
    out["run_rm"] = docker_run_times(host, args.jobs, ["--network", "none"])
    log(f"docker: median {median(out['run_rm']) * 1000:.0f} ms")
    log(f"docker: {args.jobs} × docker run --rm with the runtime's isolation options")
    out["run_rm_same_options"] = docker_run_times(host, args.jobs, runtime_like_options(workdir))
    log(f"docker: median {median(out['run_rm_same_options']) * 1000:.0f} ms")

    home = workdir / "docker-grid"
    extra = {"DOCKER_HOST": host, "GRID_EXECUTOR_PRELOAD_IMAGES": DOCKER_IMAGE}
    grid = start_grid(home, "docker grid", "cpu.small:2:2", "docker", extra)
    try:
        time.sleep(args.settle)  # the warm executors connect and check the preloaded image
        spec = JobSpec(image=DOCKER_IMAGE, command=["true"])
        latencies, jobs = asyncio.run(
            measure_chain(
                grid.facilitator_url, home / "keys" / "client.key", spec, "docker chain", args.jobs, args.warmup
            )
        )
        out["chain"] = latencies
        out["container"], out["duration"] = container_times(jobs)
        if not out["container"]:
            raise RuntimeError("no volumes_ready/execution_done events in the jobs' histories")
        return out
    except Exception:
        dump_logs(home / "logs")
        raise
    finally:
        log("docker grid: stopping")
        grid.stop()


# -- report -----------------------------------------------------------------------------------------


def ms(values: list[float], q: float = 50) -> float:
    return percentile(values, q) * 1000 if values else math.nan


def report(args: argparse.Namespace, size: int, data: dict, dock: dict | None, elapsed: float, load: float) -> bool:
    up, down = summarize(data["upload"]), summarize(data["download"])
    base_up, base_down = summarize(data["baseline_upload"]), summarize(data["baseline_download"])
    cpus = os.cpu_count() or 0
    peak_mb = down.server_peak_rss_kb / 1024
    within = peak_mb <= args.rss_budget_mb

    def row(label: str, t: Transfer) -> tuple[str, ...]:
        sent = "" if math.isnan(t.body_sent_s) else f"{t.body_sent_s:.2f}"
        return (
            label,
            f"{t.seconds:.2f}",
            f"{t.mib_s(size):.0f}",
            sent,
            f"{t.server_cpu_s:.2f}",
            f"{t.client_cpu_s:.2f}",
            f"{t.server_peak_rss_kb / 1024:.0f}",
            f"{t.server_written / MiB:.0f}",
        )

    print()
    print(
        f"Data plane: one {size / MiB:.0f} MiB object through the SDK and the facilitator's local store vs plain "
        f"HTTP on loopback, median of {args.repeats} alternating runs; {cpus} CPUs, Python {platform.python_version()}"
    )
    table(
        [
            (
                "",
                "seconds",
                "MiB/s",
                "last byte sent s",
                "server CPU s",
                "client CPU s",
                "server peak RSS MiB",
                "server wrote MiB",
            ),
            row("SDK client.upload → /objects/ PUT", up),
            row("baseline http.client PUT → http.server", base_up),
            row("SDK job.result.download ← /objects/ GET", down),
            row("baseline http.client GET ← http.server", base_down),
        ]
    )
    upload_ratio = up.seconds / base_up.seconds
    download_ratio = down.seconds / base_down.seconds
    runs = {
        name: [round(t.seconds, 2) for t in data[name]]
        for name in ("upload", "baseline_upload", "download", "baseline_download")
    }
    print(f"  runs (s): {'; '.join(f'{name} {values}' for name, values in runs.items())}")
    print()
    print("Ratios (Gridmarket / plain HTTP, same machine, same run; lower is better):")
    print(f"  upload time:    {upload_ratio:6.2f}x   ({up.seconds:.2f} s vs {base_up.seconds:.2f} s)")
    print(f"  download time:  {download_ratio:6.2f}x   ({down.seconds:.2f} s vs {base_down.seconds:.2f} s)")
    print()
    verdict = "PASS" if within else "FAIL"
    after_uploads = [kb / 1024 for kb in data["rss_after_uploads_kb"]]
    print(
        f"Facilitator peak RSS serving the download: {peak_mb:.0f} MiB (budget {args.rss_budget_mb:g} MiB): {verdict}"
    )
    print(
        f"  freshly restarted before the downloads: {data['rss_fresh_kb'] / 1024:.0f} MiB; at rest before the uploads "
        f"{data['rss_idle_kb'] / 1024:.0f} MiB; peak during an upload {up.server_peak_rss_kb / 1024:.0f} MiB; after "
        f"each upload {', '.join(f'{value:.0f}' for value in after_uploads)} MiB; after the job "
        f"{data['rss_after_job_kb'] / 1024:.0f} MiB"
    )

    figures: dict[str, Any] = {
        "upload_ratio": r(upload_ratio),
        "download_ratio": r(download_ratio),
        "upload_mb_s": r(up.mib_s(size), 1),
        "download_mb_s": r(down.mib_s(size), 1),
        "baseline_upload_mb_s": r(base_up.mib_s(size), 1),
        "baseline_download_mb_s": r(base_down.mib_s(size), 1),
        "upload_s": r(up.seconds),
        "download_s": r(down.seconds),
        "baseline_upload_s": r(base_up.seconds),
        "baseline_download_s": r(base_down.seconds),
        **{f"{name}_runs_s": values for name, values in runs.items()},
        "upload_body_sent_s": r(up.body_sent_s),
        "baseline_upload_body_sent_s": r(base_up.body_sent_s),
        "facilitator_upload_cpu_s": r(up.server_cpu_s),
        "facilitator_download_cpu_s": r(down.server_cpu_s),
        "baseline_server_upload_cpu_s": r(base_up.server_cpu_s),
        "baseline_server_download_cpu_s": r(base_down.server_cpu_s),
        "facilitator_upload_written_mb": r(up.server_written / MiB, 1),
        "baseline_server_upload_written_mb": r(base_up.server_written / MiB, 1),
        "client_upload_cpu_s": r(up.client_cpu_s),
        "client_download_cpu_s": r(down.client_cpu_s),
        "facilitator_peak_rss_mb": r(peak_mb, 1),
        "facilitator_rss_budget_mb": args.rss_budget_mb,
        "facilitator_rss_within_budget": within,
        "facilitator_fresh_rss_mb": r(data["rss_fresh_kb"] / 1024, 1),
        "facilitator_idle_rss_mb": r(data["rss_idle_kb"] / 1024, 1),
        "facilitator_upload_peak_rss_mb": r(up.server_peak_rss_kb / 1024, 1),
        "facilitator_rss_after_uploads_mb": [round(value, 1) for value in after_uploads],
        "facilitator_rss_after_job_mb": r(data["rss_after_job_kb"] / 1024, 1),
        "baseline_server_peak_rss_mb": r(max(base_up.server_peak_rss_kb, base_down.server_peak_rss_kb) / 1024, 1),
        "copy_job_s": r(data["copy_job_s"]),
        "process_chain_p50_ms": r(ms(data["process_chain"], 50)),
        "process_chain_p90_ms": r(ms(data["process_chain"], 90)),
    }

    print()
    if dock is None:
        print("Docker: skipped (--skip-docker).")
        print(f"  whole chain, process runtime: p50 {ms(data['process_chain']):.1f} ms")
        for name in ("docker_overhead_ratio", "docker_job_container_ms", "docker_run_rm_ms"):
            figures[name] = None
        figures.update(docker_chain_p50_ms=None, docker_chain_p90_ms=None)
    else:
        container_ms, run_rm_ms = ms(dock["container"]), ms(dock["run_rm"])
        overhead = container_ms / run_rm_ms
        print(f"Docker: trivial job ({DOCKER_IMAGE}, true), {args.jobs} sequential after {args.warmup} warm-up")
        table(
            [
                ("", "p50 ms", "p90 ms"),
                ("job container start→exit (history)", f"{container_ms:.1f}", f"{ms(dock['container'], 90):.1f}"),
                ("  the runtime's own duration_s", f"{ms(dock['duration']):.1f}", f"{ms(dock['duration'], 90):.1f}"),
                ("docker run --rm --network none", f"{run_rm_ms:.1f}", f"{ms(dock['run_rm'], 90):.1f}"),
                (
                    "docker run --rm, the runtime's options",
                    f"{ms(dock['run_rm_same_options']):.1f}",
                    f"{ms(dock['run_rm_same_options'], 90):.1f}",
                ),
                ("whole chain, docker runtime", f"{ms(dock['chain']):.1f}", f"{ms(dock['chain'], 90):.1f}"),
                (
                    "whole chain, process runtime",
                    f"{ms(data['process_chain']):.1f}",
                    f"{ms(data['process_chain'], 90):.1f}",
                ),
            ]
        )
        print()
        print(
            f"  docker overhead ratio (job container / docker run --rm): {overhead:.2f}x "
            f"({container_ms:.1f} ms vs {run_rm_ms:.1f} ms; lower is better)"
        )
        figures.update(
            docker_overhead_ratio=r(overhead),
            docker_job_container_ms=r(container_ms),
            docker_job_container_p90_ms=r(ms(dock["container"], 90)),
            docker_job_duration_ms=r(ms(dock["duration"])),
            docker_run_rm_ms=r(run_rm_ms),
            docker_run_rm_same_options_ms=r(ms(dock["run_rm_same_options"])),
            docker_chain_p50_ms=r(ms(dock["chain"])),
            docker_chain_p90_ms=r(ms(dock["chain"], 90)),
        )
    figures.update(
        size_mb=args.size_mb,
        repeats=args.repeats,
        jobs=args.jobs,
        warmup=args.warmup,
        elapsed_s=r(elapsed, 1),
        cpus=cpus,
        loadavg_1m_at_start=r(load, 2),
    )
    print()
    print(f"Reproduce: {reproduce_command(args)}")
    print(json.dumps(figures), flush=True)
    return within


def reproduce_command(args: argparse.Namespace) -> str:
    command = ".venv/bin/python bench/data_plane.py"
    command += f" --size-mb {args.size_mb} --repeats {args.repeats} --jobs {args.jobs} --warmup {args.warmup}"
    if args.skip_docker:
        command += " --skip-docker"
    command += changed_options(args, parse_args([]), ("settle", "rss_budget_mb"))
    if args.strict:
        command += " --strict"
    return command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser("data_plane.py", __doc__)
    parser.add_argument("--size-mb", type=int, default=1024, help="object size in MiB (default 1024)")
    parser.add_argument("--repeats", type=int, default=3, help="uploads and downloads of each kind (default 3)")
    parser.add_argument("--jobs", type=int, default=30, help="docker jobs / docker runs / process jobs (default 30)")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted warm-up jobs per chain (default 2)")
    parser.add_argument("--skip-docker", action="store_true", help="only the data plane (no engine needed)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds for warm executors to connect (default 2)")
    parser.add_argument(
        "--rss-budget-mb", type=float, default=200.0, help="facilitator peak RSS budget in MiB (default 200)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when the facilitator's RSS is over budget")
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.repeats < 1 or args.jobs < 1 or args.warmup < 0:
        parser.error("--size-mb, --repeats and --jobs must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [BASELINE_SERVER_FLAG]:
        return serve_baseline(*argv[1:3])
    args = parse_args(argv)
    load = start_run()
    started = time.perf_counter()
    size = args.size_mb * MiB
    with run_dir("gridbench-data-") as workdir:
        source = workdir / "big"
        log(f"writing {args.size_mb} MiB of random bytes to {source} …")
        sha256 = make_file(source, size)
        data = run_data_plane(workdir, args, source, sha256, size)
        dock = None if args.skip_docker else run_docker(workdir, args)
    within = report(args, size, data, dock, time.perf_counter() - started, load)
    return 1 if args.strict and not within else 0


if __name__ == "__main__":
    sys.exit(main())
