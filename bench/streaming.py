"""Streaming jobs: the sample job straight on its port vs through the signing job gateway.

Run from the repository root::

    .venv/bin/python bench/streaming.py [--requests 500 --warmup 50 --size-mb 100 --repeats 3
                                         --concurrency 32 --concurrent-requests 2000 --profile DIR --strict]

It starts the sample streaming job (``examples/streaming_echo/app.py``, its own process, as the
executor runs it) and the executor's job gateway (``executor.gateway.JobGateway`` in its own process,
as in the executor: ``bench/streaming.py --serve-gateway``) on loopback, and measures in one
invocation, each figure next to its baseline, the same job called straight on its port with httpx
(plain HTTP, no signatures):

* **Small-request latency**: ``--requests`` sequential ``POST /echo`` with a 100-byte body on one
  keep-alive client, after ``--warmup`` uncounted ones; ``StreamClient.post`` (TLS with the pinned
  certificate, a signed request, the reply's seal verified) vs ``httpx.Client.post``. Blocks of
  ``--block`` requests, direct and gateway alternating, so that drift hits both alike. p50/p95/p99.
* **Throughput of a streamed reply**: ``GET /bytes?size=`` ``--size-mb`` MiB (chunked, 64 KiB
  chunks from the job), read to its end: ``StreamClient.stream(...).iter_bytes()`` (framed reply,
  the END seal checked over the sha256 of every byte) vs ``httpx.Client.stream(...).iter_bytes()``;
  the byte count is checked in both; ``--repeats`` alternating runs each, medians.
* **Requests/s with ``--concurrency`` clients**: ``--concurrent-requests`` ``POST /echo`` (100 B)
  in all, shared out among ``--concurrency`` asyncio workers, each with its own client (its own
  keep-alive connection, opened before the clock starts): ``AsyncStreamClient`` vs
  ``httpx.AsyncClient``.

For each it also gives the CPU time of the client (this process), the gateway and the job
(``/proc/<pid>/stat``): the three share the machine's CPUs, and the client's side of the gateway
path (TLS, ed25519 signing and verifying, sha256, framing, in Python) is CPU on the same cores.
``--profile DIR`` adds cProfile of the gateway process and of the client, per phase, on the gateway
path only, timed by CPU time (``time.process_time``: waiting, and being preempted by the other two
processes, do not count); the top functions go to stderr, the stats to ``DIR/*.prof``. The figures
of such a run are slowed by the profiler: do not compare them.
MiB everywhere (``size_mb``, ``*_mb_s``). Progress goes to stderr; the figures, the ratios and how to
reproduce go to stdout, and the last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import http.client
import io
import json
import math
import os
import platform
import pstats
import select
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/streaming.py` puts bench/ first, not the repo

from bench.common import (  # noqa: E402
    STARTED,
    bench_parser,
    changed_options,
    cpu_seconds,
    log,
    median,
    percentile,
    r,
    run_dir,
    start_run,
    stop_process,
    table,
    tail,
)
from grid.local import free_port  # noqa: E402

MiB = 1024 * 1024
APP = ROOT / "examples" / "streaming_echo" / "app.py"
JOB_ID = "bench-streaming"
SERVE_GATEWAY_FLAG = "--serve-gateway"  # internal: this file run as the gateway's process
LATENCY_TARGET = 1.5  # gateway p50 / direct p50, at most
THROUGHPUT_TARGET = 0.7  # gateway MiB/s / direct MiB/s, at least


# -- the gateway's process --------------------------------------------------------------------------


async def _serve_gateway(upstream_port: int, client_key: str) -> int:
    """The job gateway in front of ``upstream_port``; one JSON line on stdout once it listens.

    Then it answers commands on stdin, one JSON line on stdout each: ``profile`` (start cProfile),
    ``dump PATH`` (stop it and write the stats there). It stops at the end of stdin or on SIGTERM.
    """
    import logging

    from executor.gateway import JobGateway

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    gateway = JobGateway(JOB_ID, upstream_port, client_key, port=0, bind="127.0.0.1")
    await gateway.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    profiler: cProfile.Profile | None = None

    def answer(**fields: Any) -> None:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()

    async def commands() -> None:
        nonlocal profiler
        while line := await reader.readline():
            verb, _, argument = line.decode().strip().partition(" ")
            if verb == "profile":
                profiler = cProfile.Profile(time.process_time)
                profiler.enable()
            elif verb == "dump" and profiler is not None:
                profiler.disable()
                profiler.dump_stats(argument)
                profiler = None
            answer(done=verb)
        stop.set()

    answer(
        port=gateway.port,
        cert_pem=gateway.cert_pem,
        readiness=gateway.readiness.model_dump(mode="json"),
        pid=os.getpid(),
    )
    task = asyncio.create_task(commands())
    try:
        await stop.wait()
    finally:
        task.cancel()
        await gateway.stop()
    return 0


def serve_gateway(argv: list[str]) -> int:
    """``python bench/streaming.py --serve-gateway UPSTREAM_PORT CLIENT_HOTKEY``."""
    upstream_port, client_key = argv
    return asyncio.run(_serve_gateway(int(upstream_port), client_key))


# -- the processes, from the benchmark's side --------------------------------------------------------


class EchoApp:
    """The sample streaming job in its own process: ``PORT=<free port> python app.py``."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log_path = workdir / "streaming_echo.log"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 15.0) -> None:
        log(f"job: {APP.relative_to(ROOT)} on 127.0.0.1:{self.port} (its own process)")
        with open(self.log_path, "wb") as stderr:  # one line per request: to a file, never a pipe
            self.process = subprocess.Popen(
                [sys.executable, str(APP)],
                env={**os.environ, "PORT": str(self.port)},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        STARTED.append(self.process)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                tail(self.log_path)
                raise RuntimeError(f"the job exited with {self.process.returncode} before answering GET /health")
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)  # no proxies
            try:
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the job did not answer GET /health within {timeout:g}s")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.process, "the job")


class GatewayProcess:
    """``bench/streaming.py --serve-gateway`` in its own process; commands on its stdin."""

    def __init__(self, workdir: Path, upstream_port: int, client_key: str) -> None:
        self.upstream_port, self.client_key = upstream_port, client_key
        self.log_path = workdir / "gateway.log"
        self.process: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30.0) -> dict[str, Any]:
        command = [sys.executable, str(Path(__file__).resolve()), SERVE_GATEWAY_FLAG]
        command += [str(self.upstream_port), self.client_key]
        with open(self.log_path, "wb") as stderr:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True
            )
        STARTED.append(self.process)
        self.info = self._read(timeout)
        log(f"gateway: executor.gateway.JobGateway on 127.0.0.1:{self.info['port']} (its own process)")
        return self.info

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            tail(self.log_path)
            raise RuntimeError(f"the gateway process did not answer (exit code {self.process.poll()})")
        return json.loads(line)

    def command(self, text: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        self.process.stdin.flush()
        self._read(60)

    def stop(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # the end of its commands: it stops
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        stop_process(self.process, "the gateway")


def make_target(info: dict[str, Any]) -> Any:
    """The :class:`StreamTarget` a client gets from the facilitator: a miner signs the gateway's readiness."""
    from facilitator_sdk.streaming import StreamTarget
    from protocol.keys import Keypair
    from protocol.streaming import Readiness, cert_fingerprint, sign_readiness

    miner = Keypair.generate()
    readiness = Readiness.model_validate(info["readiness"])
    if readiness.cert_fingerprint != cert_fingerprint(ssl.PEM_cert_to_DER_cert(info["cert_pem"])):
        raise RuntimeError("the gateway's readiness does not name its certificate")
    return StreamTarget(
        job_id=JOB_ID,
        readiness=readiness,
        cert_pem=info["cert_pem"],
        miner_hotkey=miner.hotkey,
        miner_signature=sign_readiness(miner, readiness),
    )


# -- measuring ----------------------------------------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds of the client (this process), the gateway and the job over some stretch."""

    client: float = 0.0
    gateway: float = 0.0
    job: float = 0.0

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(self.client + other.client, self.gateway + other.gateway, self.job + other.job)


class Processes:
    """The pids to account CPU to, and the optional profiler of each phase on the gateway path."""

    def __init__(self, gateway: GatewayProcess, app: EchoApp, profile_dir: Path | None) -> None:
        self.gateway, self.app, self.profile_dir = gateway, app, profile_dir
        self.profiled: list[tuple[str, Path, Path]] = []

    @contextlib.contextmanager
    def cpu(self) -> Iterator[Cpu]:
        """The CPU used inside the block, filled in when it ends."""
        used = Cpu()
        client, gateway, job = time.process_time(), cpu_seconds(self.gateway.pid), cpu_seconds(self.app.pid)
        try:
            yield used
        finally:
            used.client = time.process_time() - client
            used.gateway = cpu_seconds(self.gateway.pid) - gateway
            used.job = cpu_seconds(self.app.pid) - job

    @contextlib.contextmanager
    def profile(self, phase: str) -> Iterator[None]:
        """cProfile of the client and the gateway inside the block, with ``--profile``."""
        if self.profile_dir is None:
            yield
            return
        index = len(self.profiled)
        gateway_stats = self.profile_dir / f"gateway-{phase}-{index}.prof"
        client_stats = self.profile_dir / f"client-{phase}-{index}.prof"
        profiler = cProfile.Profile(time.process_time)
        self.gateway.command("profile")
        profiler.enable()
        try:
            yield
        finally:
            profiler.disable()
            profiler.dump_stats(client_stats)
            self.gateway.command(f"dump {gateway_stats}")
            self.profiled.append((phase, gateway_stats, client_stats))


@dataclass
class Latency:
    seconds: list[float] = field(default_factory=list)
    cpu: Cpu = field(default_factory=Cpu)

    def ms(self, q: float) -> float:
        return percentile(self.seconds, q) * 1000


def measure_latency(
    args: argparse.Namespace, procs: Processes, target: Any, key: Any, app_url: str
) -> tuple[Latency, Latency]:
    """Sequential ``POST /echo`` on one keep-alive client each: blocks of ``--block``, alternating."""
    import httpx

    from facilitator_sdk.streaming import StreamClient

    body = os.urandom(args.body_bytes)
    headers = {"Content-Type": "application/octet-stream"}
    direct, gateway = Latency(), Latency()

    with httpx.Client(base_url=app_url, timeout=30, trust_env=False) as plain, StreamClient(target, key) as signed:

        def call_direct() -> None:
            reply = plain.post("/echo", content=body, headers=headers)
            if reply.status_code != 200 or reply.content != body:
                raise RuntimeError(f"direct POST /echo: {reply.status_code}, {len(reply.content)} bytes")

        def call_gateway() -> None:
            reply = signed.post("/echo", content=body, headers=headers)
            if reply.status_code != 200 or reply.content != body or reply.evidence is None:
                raise RuntimeError(f"gateway POST /echo: {reply.status_code}, {len(reply.content)} bytes")

        legs: dict[str, tuple[Callable[[], None], Latency]] = {
            "direct": (call_direct, direct),
            "gateway": (call_gateway, gateway),
        }
        log(f"latency: {args.warmup} warm-up POST /echo ({args.body_bytes} B) each, direct and through the gateway")
        for _ in range(args.warmup):
            call_direct()
            call_gateway()
        log(f"latency: {args.requests} sequential POST /echo each, blocks of {args.block}, alternating")
        done = 0
        while done < args.requests:
            count = min(args.block, args.requests - done)
            order = ("direct", "gateway") if (done // args.block) % 2 == 0 else ("gateway", "direct")
            for name in order:
                call, result = legs[name]
                with procs.cpu() as used, procs.profile("latency") if name == "gateway" else contextlib.nullcontext():
                    for _ in range(count):
                        started = time.perf_counter()
                        call()
                        result.seconds.append(time.perf_counter() - started)
                result.cpu = result.cpu + used
            done += count
        log(f"latency: p50 direct {direct.ms(50):.2f} ms, gateway {gateway.ms(50):.2f} ms")
    return direct, gateway


@dataclass
class Transfer:
    seconds: float
    received: int
    cpu: Cpu

    def mib_s(self) -> float:
        return self.received / MiB / self.seconds if self.seconds else math.nan


def measure_throughput(
    args: argparse.Namespace, procs: Processes, target: Any, key: Any, app_url: str
) -> tuple[list[Transfer], list[Transfer]]:
    """``GET /bytes?size=`` read to its end, ``--repeats`` times each, alternating; byte counts checked."""
    import httpx

    from facilitator_sdk.streaming import StreamClient

    size = args.size_mb * MiB
    params = {"size": str(size)}
    direct: list[Transfer] = []
    gateway: list[Transfer] = []

    def consume(chunks: Iterator[bytes], who: str) -> int:
        received = 0
        for chunk in chunks:
            if chunk and chunk[0] != received % 256:  # byte i is i % 256: a cheap check of where we are
                raise RuntimeError(f"{who}: wrong byte at offset {received}")
            received += len(chunk)
        if received != size:
            raise RuntimeError(f"{who}: got {received} bytes, not {size}")
        return received

    with httpx.Client(base_url=app_url, timeout=60, trust_env=False) as plain, StreamClient(target, key) as signed:

        def get_direct() -> Transfer:
            with procs.cpu() as used:
                started = time.perf_counter()
                with plain.stream("GET", "/bytes", params=params) as reply:
                    if reply.status_code != 200:
                        raise RuntimeError(f"direct GET /bytes: {reply.status_code}")
                    received = consume(reply.iter_bytes(), "direct")
                seconds = time.perf_counter() - started
            return Transfer(seconds, received, used)

        def get_gateway() -> Transfer:
            with procs.cpu() as used, procs.profile("throughput"):
                started = time.perf_counter()
                with signed.stream("GET", "/bytes", params=params) as reply:
                    if reply.status_code != 200 or not reply.framed:
                        raise RuntimeError(f"gateway GET /bytes: {reply.status_code}, framed {reply.framed}")
                    received = consume(reply.iter_bytes(), "gateway")  # to its end: the END seal is checked
                seconds = time.perf_counter() - started
            if reply.evidence is None or not reply.evidence.seal.complete:
                raise RuntimeError("gateway GET /bytes: no complete seal")
            return Transfer(seconds, received, used)

        plain.get("/health")  # the connections are open before the clock starts
        signed.get("/health")
        for round_ in range(args.repeats):
            for who in ("direct", "gateway") if round_ % 2 == 0 else ("gateway", "direct"):
                log(f"throughput: {who} GET /bytes {args.size_mb} MiB ({round_ + 1}/{args.repeats}) …")
                transfer = get_direct() if who == "direct" else get_gateway()
                (direct if who == "direct" else gateway).append(transfer)
                log(f"throughput: {who} {transfer.seconds:.2f} s, {transfer.mib_s():.0f} MiB/s")
    return direct, gateway


@dataclass
class Load:
    seconds: float
    latencies: list[float]
    cpu: Cpu

    def per_s(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else math.nan

    def ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


async def run_workers(
    clients: list[Any], total: int, call: Callable[[Any], Awaitable[None]], timed: contextlib.AbstractContextManager
) -> tuple[float, list]:
    """``total`` calls shared out among one worker per client (each client opened before the clock starts).

    The warm-up ramps up, 1, 2, … ``len(clients)`` calls at once, so that connections open about one at a
    time: the sample job listens with ``http.server``'s backlog of 5, and a burst of new connections
    overflows it (dropped SYNs retried after 1 s, resets). The gateway's pool of connections to the job
    grows the same way. ``timed`` is entered around the timed part only (CPU accounting, profiles).
    """
    for count in range(1, len(clients) + 1):
        await asyncio.gather(*(call(client) for client in clients[:count]))
    latencies: list[float] = []
    remaining = [total]

    async def worker(client: Any) -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            started = time.perf_counter()
            await call(client)
            latencies.append(time.perf_counter() - started)

    with timed:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for client in clients))
        seconds = time.perf_counter() - started
    return seconds, latencies


def measure_load(args: argparse.Namespace, procs: Processes, target: Any, key: Any, app_url: str) -> tuple[Load, Load]:
    """``--concurrent-requests`` ``POST /echo`` by ``--concurrency`` workers, each with its own client."""
    import httpx

    from facilitator_sdk.streaming import AsyncStreamClient

    body = os.urandom(args.body_bytes)
    headers = {"Content-Type": "application/octet-stream"}
    n = args.concurrency

    async def direct_call(client: httpx.AsyncClient) -> None:
        reply = await client.post("/echo", content=body, headers=headers)
        if reply.status_code != 200 or reply.content != body:
            raise RuntimeError(f"direct POST /echo: {reply.status_code}")

    async def gateway_call(client: AsyncStreamClient) -> None:
        reply = await client.post("/echo", content=body, headers=headers)
        if reply.status_code != 200 or reply.content != body or reply.evidence is None:
            raise RuntimeError(f"gateway POST /echo: {reply.status_code}")

    @contextlib.contextmanager
    def timed(used: Cpu, profiled: bool) -> Iterator[None]:
        with procs.cpu() as cpu, procs.profile("load") if profiled else contextlib.nullcontext():
            yield
        used.client, used.gateway, used.job = cpu.client, cpu.gateway, cpu.job

    async def direct(used: Cpu) -> tuple[float, list]:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(httpx.AsyncClient(base_url=app_url, timeout=60, trust_env=False))
                for _ in range(n)
            ]
            return await run_workers(clients, args.concurrent_requests, direct_call, timed(used, False))

    async def gateway(used: Cpu) -> tuple[float, list]:
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(AsyncStreamClient(target, key, timeout=60)) for _ in range(n)]
            return await run_workers(clients, args.concurrent_requests, gateway_call, timed(used, True))

    results: dict[str, Load] = {}
    for who in ("direct", "gateway"):
        log(f"load: {args.concurrent_requests} POST /echo by {n} concurrent clients, {who} …")
        used = Cpu()
        seconds, latencies = asyncio.run(direct(used) if who == "direct" else gateway(used))
        results[who] = Load(seconds, latencies, used)
        log(f"load: {who} {results[who].per_s():.0f} requests/s")
    return results["direct"], results["gateway"]


# -- profiles -------------------------------------------------------------------------------------


def print_profiles(profiled: list[tuple[str, Path, Path]], top: int = 25) -> None:
    """The top functions by own CPU time of each phase's profiles, to stderr."""
    merged: dict[tuple[str, str], list[str]] = {}
    for phase, gateway_stats, client_stats in profiled:
        for who, path in (("gateway", gateway_stats), ("client", client_stats)):
            if path.exists():
                merged.setdefault((phase, who), []).append(str(path))
    for (phase, who), paths in merged.items():
        out = io.StringIO()
        stats = pstats.Stats(*paths, stream=out)
        stats.files = []  # not one line per file merged
        stats.sort_stats("tottime").print_stats(top)
        where = paths[0] if len(paths) == 1 else f"{len(paths)} files {who}-{phase}-*.prof"
        print(f"---- cProfile, CPU time: {who}, {phase} ({where}) ----", file=sys.stderr)
        print(out.getvalue().strip("\n"), file=sys.stderr)


# -- report -----------------------------------------------------------------------------------------


def us_per(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:.0f}" if count else ""


def report(args: argparse.Namespace, results: dict[str, Any], elapsed: float, load: float) -> bool:
    lat_direct, lat_gateway = results["latency"]
    tp_direct, tp_gateway = results["throughput"]
    load_direct, load_gateway = results["load"]
    cpus = os.cpu_count() or 0
    n = args.concurrency

    def summary(runs: list[Transfer]) -> tuple[float, float, Cpu]:
        seconds = median([run.seconds for run in runs])
        cpu = Cpu(
            median([run.cpu.client for run in runs]),
            median([run.cpu.gateway for run in runs]),
            median([run.cpu.job for run in runs]),
        )
        return seconds, args.size_mb / seconds, cpu

    tp_direct_s, direct_mb_s, tp_direct_cpu = summary(tp_direct)
    tp_gateway_s, gateway_mb_s, tp_gateway_cpu = summary(tp_gateway)

    print()
    print(
        f"Streaming: the sample job (examples/streaming_echo) straight on its port vs through the job gateway "
        f"(TLS, signed requests, sealed replies verified); {cpus} CPUs, Python {platform.python_version()}"
    )
    print()
    print(
        f"Small requests: POST /echo, {args.body_bytes} B body, {args.requests} sequential on one keep-alive "
        f"client after {args.warmup} warm-up (blocks of {args.block}, alternating)"
    )
    rows = [("", "p50 ms", "p95 ms", "p99 ms", "client CPU µs/req", "gateway CPU µs/req", "job CPU µs/req")]
    for label, result in (("direct: httpx.Client", lat_direct), ("gateway: StreamClient", lat_gateway)):
        count = len(result.seconds)
        rows.append(
            (
                label,
                f"{result.ms(50):.2f}",
                f"{result.ms(95):.2f}",
                f"{result.ms(99):.2f}",
                us_per(result.cpu.client, count),
                us_per(result.cpu.gateway, count) if label.startswith("gateway") else "",
                us_per(result.cpu.job, count),
            )
        )
    table(rows)
    print()
    print(f"Streamed reply: GET /bytes, {args.size_mb} MiB read to its end, median of {args.repeats} alternating runs")
    rows = [("", "seconds", "MiB/s", "client CPU s", "gateway CPU s", "job CPU s")]
    rows.append(
        (
            "direct: httpx.Client.stream",
            f"{tp_direct_s:.2f}",
            f"{direct_mb_s:.0f}",
            f"{tp_direct_cpu.client:.2f}",
            "",
            f"{tp_direct_cpu.job:.2f}",
        )
    )
    rows.append(
        (
            "gateway: StreamClient.stream",
            f"{tp_gateway_s:.2f}",
            f"{gateway_mb_s:.0f}",
            f"{tp_gateway_cpu.client:.2f}",
            f"{tp_gateway_cpu.gateway:.2f}",
            f"{tp_gateway_cpu.job:.2f}",
        )
    )
    table(rows)
    runs = {"direct": [round(t.seconds, 2) for t in tp_direct], "gateway": [round(t.seconds, 2) for t in tp_gateway]}
    print(f"  runs (s): direct {runs['direct']}; gateway {runs['gateway']}")
    print()
    print(
        f"Load: {args.concurrent_requests} POST /echo ({args.body_bytes} B) by {n} concurrent asyncio workers, "
        "each with its own client and keep-alive connection"
    )
    rows = [("", "requests/s", "p50 ms", "p95 ms", "client CPU µs/req", "gateway CPU µs/req", "job CPU µs/req")]
    for label, result in (("direct: httpx.AsyncClient", load_direct), ("gateway: AsyncStreamClient", load_gateway)):
        count = len(result.latencies)
        rows.append(
            (
                label,
                f"{result.per_s():.0f}",
                f"{result.ms(50):.2f}",
                f"{result.ms(95):.2f}",
                us_per(result.cpu.client, count),
                us_per(result.cpu.gateway, count) if label.startswith("gateway") else "",
                us_per(result.cpu.job, count),
            )
        )
    table(rows)

    latency_ratio = lat_gateway.ms(50) / lat_direct.ms(50)
    latency_p95_ratio = lat_gateway.ms(95) / lat_direct.ms(95)
    throughput_ratio = gateway_mb_s / direct_mb_s
    load_ratio = load_gateway.per_s() / load_direct.per_s()
    targets = {
        "latency_ratio": latency_ratio <= LATENCY_TARGET,
        "throughput_ratio": throughput_ratio >= THROUGHPUT_TARGET,
    }

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print()
    print("Ratios (gateway / direct, same machine, same run):")
    print(
        f"  latency p50:    {latency_ratio:6.2f}x  (target <= {LATENCY_TARGET}x: {verdict(targets['latency_ratio'])}; "
        f"{lat_gateway.ms(50):.2f} ms vs {lat_direct.ms(50):.2f} ms)"
    )
    print(f"  latency p95:    {latency_p95_ratio:6.2f}x  ({lat_gateway.ms(95):.2f} ms vs {lat_direct.ms(95):.2f} ms)")
    print(
        f"  throughput:     {throughput_ratio:6.2f}x  (target >= {THROUGHPUT_TARGET}x: "
        f"{verdict(targets['throughput_ratio'])}; {gateway_mb_s:.0f} MiB/s vs {direct_mb_s:.0f} MiB/s)"
    )
    print(
        f"  requests/s, {n} clients: {load_ratio:.2f}x  ({load_gateway.per_s():.0f} vs {load_direct.per_s():.0f}; "
        "no target)"
    )
    print()
    print(
        f"Note: the client (this process), the gateway and the job share the {cpus} CPUs: on the gateway path the "
        "client's own TLS, ed25519 signing and verifying, sha256 and framing (Python) take CPU from the gateway and "
        "the job, most of all under load. CPU columns: /proc/<pid>/stat (10 ms ticks) and time.process_time()."
    )
    if args.profile:
        print(f"Profiled run (--profile {args.profile}): the gateway figures are slowed by cProfile.")

    figures: dict[str, Any] = {
        "latency_ratio": r(latency_ratio),
        "latency_p95_ratio": r(latency_p95_ratio),
        "throughput_ratio": r(throughput_ratio),
        "requests_per_s_ratio": r(load_ratio),
        "gateway_p50_ms": r(lat_gateway.ms(50)),
        "direct_p50_ms": r(lat_direct.ms(50)),
        "gateway_p95_ms": r(lat_gateway.ms(95)),
        "direct_p95_ms": r(lat_direct.ms(95)),
        "gateway_p99_ms": r(lat_gateway.ms(99)),
        "direct_p99_ms": r(lat_direct.ms(99)),
        "gateway_mb_s": r(gateway_mb_s, 1),
        "direct_mb_s": r(direct_mb_s, 1),
        "gateway_stream_s": r(tp_gateway_s),
        "direct_stream_s": r(tp_direct_s),
        "gateway_stream_runs_s": runs["gateway"],
        "direct_stream_runs_s": runs["direct"],
        f"requests_per_s_{n}": r(load_gateway.per_s(), 1),
        f"direct_requests_per_s_{n}": r(load_direct.per_s(), 1),
        "gateway_loaded_p50_ms": r(load_gateway.ms(50)),
        "gateway_loaded_p95_ms": r(load_gateway.ms(95)),
        "direct_loaded_p50_ms": r(load_direct.ms(50)),
        "direct_loaded_p95_ms": r(load_direct.ms(95)),
        "targets": {"latency_ratio_max": LATENCY_TARGET, "throughput_ratio_min": THROUGHPUT_TARGET},
        "targets_met": targets,
        "cpu_us_per_request": {
            "gateway_client": r(lat_gateway.cpu.client / len(lat_gateway.seconds) * 1e6, 0),
            "gateway_gateway": r(lat_gateway.cpu.gateway / len(lat_gateway.seconds) * 1e6, 0),
            "gateway_job": r(lat_gateway.cpu.job / len(lat_gateway.seconds) * 1e6, 0),
            "direct_client": r(lat_direct.cpu.client / len(lat_direct.seconds) * 1e6, 0),
            "direct_job": r(lat_direct.cpu.job / len(lat_direct.seconds) * 1e6, 0),
        },
        "cpu_s_per_stream": {
            "gateway_client": r(tp_gateway_cpu.client, 2),
            "gateway_gateway": r(tp_gateway_cpu.gateway, 2),
            "gateway_job": r(tp_gateway_cpu.job, 2),
            "direct_client": r(tp_direct_cpu.client, 2),
            "direct_job": r(tp_direct_cpu.job, 2),
        },
        "cpu_s_under_load": {
            "gateway_client": r(load_gateway.cpu.client, 2),
            "gateway_gateway": r(load_gateway.cpu.gateway, 2),
            "gateway_job": r(load_gateway.cpu.job, 2),
            "direct_client": r(load_direct.cpu.client, 2),
            "direct_job": r(load_direct.cpu.job, 2),
        },
        "requests": args.requests,
        "warmup": args.warmup,
        "block": args.block,
        "body_bytes": args.body_bytes,
        "size_mb": args.size_mb,
        "repeats": args.repeats,
        "concurrency": n,
        "concurrent_requests": args.concurrent_requests,
        "profiled": bool(args.profile),
        "elapsed_s": r(elapsed, 1),
        "cpus": cpus,
        "loadavg_1m_at_start": r(load, 2),
    }
    print()
    print(f"Reproduce: {reproduce_command(args)}")
    print(json.dumps(figures), flush=True)
    return all(targets.values())


def reproduce_command(args: argparse.Namespace) -> str:
    command = ".venv/bin/python bench/streaming.py"
    command += f" --requests {args.requests} --warmup {args.warmup} --size-mb {args.size_mb}"
    command += f" --repeats {args.repeats} --concurrency {args.concurrency}"
    command += f" --concurrent-requests {args.concurrent_requests}"
    command += changed_options(args, parse_args([]), ("block", "body_bytes"))
    if args.profile:
        command += f" --profile {args.profile}"
    if args.strict:
        command += " --strict"
    return command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser("streaming.py", __doc__)
    parser.add_argument("--requests", type=int, default=500, help="sequential POST /echo each way (default 500)")
    parser.add_argument("--warmup", type=int, default=50, help="uncounted POST /echo each way first (default 50)")
    parser.add_argument("--block", type=int, default=50, help="sequential requests per alternating block (50)")
    parser.add_argument("--body-bytes", type=int, default=100, help="POST /echo body size in bytes (default 100)")
    parser.add_argument("--size-mb", type=int, default=100, help="streamed reply size in MiB (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="streamed replies each way (default 3)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument(
        "--concurrent-requests", type=int, default=2000, help="POST /echo in all under load (default 2000)"
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="cProfile the gateway process and the client per phase, stats into DIR"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a ratio misses its target")
    args = parser.parse_args(argv)
    if min(args.requests, args.block, args.size_mb, args.repeats, args.concurrency, args.concurrent_requests) < 1:
        parser.error("--requests, --block, --size-mb, --repeats, --concurrency, --concurrent-requests must be >= 1")
    if args.warmup < 0 or args.body_bytes < 0:
        parser.error("--warmup and --body-bytes must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [SERVE_GATEWAY_FLAG]:
        return serve_gateway(argv[1:3])
    args = parse_args(argv)
    load = start_run()
    started = time.perf_counter()
    from protocol.keys import Keypair

    with run_dir("gridbench-streaming-") as workdir:
        profile_dir = Path(args.profile).resolve() if args.profile else None
        if profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
        app = EchoApp(workdir)
        client_key = Keypair.generate()  # the client's streaming key: its hotkey goes into the gateway
        gateway = GatewayProcess(workdir, app.port, client_key.hotkey)
        procs = Processes(gateway, app, profile_dir)
        results: dict[str, Any] = {}
        try:
            app.start()
            target = make_target(gateway.start())
            app_url = f"http://127.0.0.1:{app.port}"
            results["latency"] = measure_latency(args, procs, target, client_key, app_url)
            results["throughput"] = measure_throughput(args, procs, target, client_key, app_url)
            results["load"] = measure_load(args, procs, target, client_key, app_url)
        except Exception:
            tail(gateway.log_path)
            tail(app.log_path, 5)
            raise
        finally:
            gateway.stop()
            app.stop()
    if profile_dir is not None:
        print_profiles(procs.profiled)
    met = report(args, results, time.perf_counter() - started, load)
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
