"""``python -m executor``: one executor, its one-time key on stdin (never in the environment).

Environment: ``GRID_MINER_URL`` (the miner's executor endpoint), ``GRID_MINER_HOTKEY`` (pinned),
``GRID_EXECUTOR_RUNTIME`` (``process`` or ``docker``), ``GRID_EXECUTOR_MAX_OUTPUT`` (bytes per stream),
``GRID_EXECUTOR_WORK_ROOT`` (where job directories go; default the system temp dir),
``GRID_EXECUTOR_GPUS`` (this executor's GPU UUIDs, set by the fork server per executor; docs/gpu.md),
``GRID_EXECUTOR_MAX_JOBS`` (jobs served before it ends; :func:`max_jobs`).
Miners normally start executors through :mod:`executor.forkserver` instead, which forks them
from a process that has already imported all of this.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from collections.abc import Mapping

from executor.driver import ExecutorConfig, JobDriver
from executor.runtimes import Runtime, load_runtime
from executor.taskgraph.polling_agent import KeptWorker
from protocol.errors import HandshakeError
from protocol.keys import Keypair
from protocol.messages import MINER_TO_EXECUTOR
from protocol.transport import Connection, ConnectionLost, connect

__all__ = ["DEFAULT_MAX_JOBS", "max_jobs", "run_executor", "serve"]

log = logging.getLogger("grid.executor")
DEFAULT_MAX_JOBS = 100


def configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("GRID_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s executor[%(process)d]: %(message)s",
        force=True,
    )
    # httpx logs every request's full URL at INFO: signed store URLs carry their credentials.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def max_jobs(environ: Mapping[str, str] = os.environ) -> int:
    """``GRID_EXECUTOR_MAX_JOBS``: how many jobs one executor serves before it ends (default 100).

    The miner sets it for the executors it starts, and counts the same way (its pool replaces an
    executor that reached it), so that leaks in a long-lived executor cannot accumulate.
    """
    value = environ.get("GRID_EXECUTOR_MAX_JOBS", "").strip() or str(DEFAULT_MAX_JOBS)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"GRID_EXECUTOR_MAX_JOBS must be a whole number ≥ 1, got {value!r}")
    return int(value)


def _wait_for_jobs_without_threads() -> None:
    """Before Python 3.12, asyncio waits for each child process on a thread started for it (its
    ``ThreadedChildWatcher``): a thread a job. A pidfd says when the child ends, with no thread;
    3.12 and later pick that watcher by themselves."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))  # the kernel may not have it (Linux < 5.3)
    except OSError:
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)


async def run_executor(seed_hex: str) -> int:
    """Connect to the miner with the one-time key, serve its jobs one after another, return the exit status.

    The executor ends after ``GRID_EXECUTOR_MAX_JOBS`` jobs, or after a job it did not end itself
    (cancelled, the miner lost, an executor error): the miner starts a fresh one.
    """
    _wait_for_jobs_without_threads()
    keypair = Keypair.from_seed_hex(seed_hex)
    runtime = load_runtime(os.environ.get("GRID_EXECUTOR_RUNTIME", "process"))
    config = ExecutorConfig.from_env()
    limit = max_jobs()
    try:
        connection = await connect(
            os.environ["GRID_MINER_URL"],
            keypair,
            "executor",
            MINER_TO_EXECUTOR,
            server_hotkey=os.environ.get("GRID_MINER_HOTKEY") or None,
        )
    except (HandshakeError, OSError, TimeoutError) as exc:
        log.error("cannot reach the miner: %s", exc)
        return 2
    try:
        await serve(connection, runtime, config, limit)
    except ConnectionLost:
        log.info("the miner closed the connection before a job came")
    finally:
        await connection.close()
    return 0


async def serve(connection: Connection, runtime: Runtime, config: ExecutorConfig, limit: int) -> int:
    """Drive the miner's jobs one after another on ``connection``; how many were driven.

    Stops after ``limit`` jobs, or after a job that did not end as this executor reported it.
    """
    reserved, dirs, kept = None, None, KeptWorker(config.worker_idle_s)
    try:
        for served in range(limit):
            driver = JobDriver(connection, runtime, config, reserved, warm_up=served == 0, dirs=dirs, kept=kept)
            await driver.run()
            dirs = driver.dirs_kept
            if not driver.may_serve_again:
                return served + 1 if driver.job_id is not None else served
            reserved = driver.next_reserved
        return limit
    finally:
        await kept.close()
        if dirs is not None:  # emptied for a job that will not come
            shutil.rmtree(dirs.root, ignore_errors=True)


if __name__ == "__main__":
    configure_logging()
    sys.exit(asyncio.run(run_executor(sys.stdin.readline())))
