"""``python -m executor.forkserver``: starts executors by forking a process that imported them once.

A fresh Python with the executor's imports costs ~200 ms of CPU here; a fork of this process
costs a few ms. Each executor is still its own process, authenticated by its own one-time key.

Line protocol on stdin / stdout (the miner's :class:`miner.executors.spawner.ForkServerSpawner`):

    → spawn <token> <seed_hex> [gpus] fork an executor with this one-time key (and these GPU
                                      UUIDs, comma-separated: its GRID_EXECUTOR_GPUS)
    ← started <token> <pid>
    ← exited <pid> <status>           an executor ended (negative: killed by that signal)

The server exits when its stdin closes (the miner went away). It owns its executors' job
directories under ``GRID_EXECUTOR_WORK_ROOT``: it removes an executor's directories when that
executor ends however it ended (even SIGKILL), and sweeps leftovers of dead executors at start
and every ``GRID_EXECUTOR_SWEEP_S`` seconds (default 60): an executor of a miner that was
killed outlives its fork server for a while, and dies with nobody left to reap it.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

# What httpx imports only when its first client is made: each executor made its own (its first
# HTTP request is the upload of the job's logs), ~60 ms of CPU per job. Imported here, once.
import anyio._backends._asyncio  # noqa: F401
import h11  # noqa: F401
import httpcore  # noqa: F401

import executor.driver
import executor.runtimes.docker
import executor.runtimes.process
from executor.__main__ import configure_logging, run_executor
from executor.driver import job_dir_prefix
from executor.gpus import GPUS_ENV


def _child(seed_hex: str, gpus: str, fds: list[int]) -> None:
    signal.set_wakeup_fd(-1)
    # This executor's GPUs alone (executor/gpus.py); one without is bound to none.
    if gpus:
        os.environ[GPUS_ENV] = gpus
    else:
        os.environ.pop(GPUS_ENV, None)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in fds:
        os.close(fd)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # our stdout is the protocol pipe: executors log to stderr only
    code = 1
    try:
        configure_logging()
        code = asyncio.run(run_executor(seed_hex))
    finally:
        os._exit(code)


def _work_root() -> Path | None:
    root = os.environ.get("GRID_EXECUTOR_WORK_ROOT")
    return Path(root) if root else None


def _remove_job_dirs(pid: int) -> None:
    root = _work_root()
    if root is not None:
        for path in root.glob(job_dir_prefix(pid) + "*"):
            shutil.rmtree(path, ignore_errors=True)


def _sweep_leftovers() -> None:
    """Remove job directories whose executor is no longer alive (left by a crash)."""
    root = _work_root()
    if root is None or not root.is_dir():
        return
    for path in root.glob("job-*-*"):
        try:
            pid = int(path.name.split("-")[1])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


def _reap(out) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _remove_job_dirs(pid)
        out.write(f"exited {pid} {os.waitstatus_to_exitcode(status)}\n")
        out.flush()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_containers() -> None:
    """Remove job containers of executors that died (docker runtime only)."""
    if os.environ.get("GRID_EXECUTOR_RUNTIME") != "docker":
        return
    from executor.runtimes.docker_client import EngineUnavailable, connect

    miner = os.environ.get("GRID_MINER_HOTKEY", "")
    if not miner:
        print("forkserver: no GRID_MINER_HOTKEY: leftover containers are not swept", file=sys.stderr)
        return

    try:
        client = connect()
    except EngineUnavailable as exc:
        print(f"forkserver: cannot sweep leftover containers: {exc}", file=sys.stderr)
        return
    try:
        removed = executor.runtimes.docker.sweep_leftovers(
            client, alive=_pid_alive, miner=miner, forkserver=os.environ["GRID_FORKSERVER_ID"]
        )
        if removed:
            print(f"forkserver: removed {len(removed)} leftover job container(s)", file=sys.stderr)
    finally:
        client.close()  # before any fork: children must not share its sockets


def serve() -> None:
    # Labels this server's executors' containers: the sweep tells them from an earlier server's.
    os.environ["GRID_FORKSERVER_ID"] = uuid.uuid4().hex
    _sweep_leftovers()
    _sweep_containers()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    stdin = sys.stdin.buffer.raw  # type: ignore[attr-defined]
    selector.register(stdin, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    out = sys.stdout
    pending = b""
    sweep_s = float(os.environ.get("GRID_EXECUTOR_SWEEP_S", "60"))
    next_sweep = time.monotonic() + sweep_s
    while True:
        if time.monotonic() >= next_sweep:
            _sweep_leftovers()
            _sweep_containers()
            next_sweep = time.monotonic() + sweep_s
        for key, _ in selector.select(timeout=max(0.0, next_sweep - time.monotonic())):
            if key.fd == wake_r:
                os.read(wake_r, 4096)
                _reap(out)
                continue
            chunk = os.read(stdin.fileno(), 65536)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                parts = line.decode().split()
                if len(parts) not in (3, 4) or parts[0] != "spawn":
                    print(f"forkserver: ignoring malformed request {line[:40]!r}", file=sys.stderr)
                    continue
                token, seed_hex, gpus = parts[1], parts[2], parts[3] if len(parts) == 4 else ""
                pid = os.fork()
                if pid == 0:
                    _child(seed_hex, gpus, [wake_r, wake_w, stdin.fileno()])
                out.write(f"started {token} {pid}\n")
                out.flush()
        _reap(out)


if __name__ == "__main__":
    serve()
