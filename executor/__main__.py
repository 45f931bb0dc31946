"""``python -m executor``: one executor, its one-time key on stdin (never in the environment).

Environment: ``GRID_MINER_URL`` (the miner's executor endpoint), ``GRID_MINER_HOTKEY`` (pinned),
``GRID_EXECUTOR_RUNTIME`` (``process`` or ``docker``), ``GRID_EXECUTOR_MAX_OUTPUT`` (bytes per stream),
``GRID_EXECUTOR_WORK_ROOT`` (where job directories go; default the system temp dir),
``GRID_EXECUTOR_GPUS`` (this executor's GPU UUIDs, set by the fork server per executor; docs/gpu.md).
Miners normally start executors through :mod:`executor.forkserver` instead, which forks them
from a process that has already imported all of this.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from executor.driver import ExecutorConfig, JobDriver
from executor.runtimes import load_runtime
from protocol.errors import HandshakeError
from protocol.keys import Keypair
from protocol.messages import MINER_TO_EXECUTOR
from protocol.transport import ConnectionLost, connect

__all__ = ["run_executor"]

log = logging.getLogger("grid.executor")


def configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("GRID_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s executor[%(process)d]: %(message)s",
        force=True,
    )
    # httpx logs every request's full URL at INFO: signed store URLs carry their credentials.
    logging.getLogger("httpx").setLevel(logging.WARNING)


async def run_executor(seed_hex: str) -> int:
    """Connect to the miner with the one-time key, drive one job, return the exit status."""
    keypair = Keypair.from_seed_hex(seed_hex)
    runtime = load_runtime(os.environ.get("GRID_EXECUTOR_RUNTIME", "process"))
    config = ExecutorConfig.from_env()
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
        await JobDriver(connection, runtime, config).run()
    except ConnectionLost:
        log.info("the miner closed the connection before a job came")
    finally:
        await connection.close()
    return 0


if __name__ == "__main__":
    configure_logging()
    sys.exit(asyncio.run(run_executor(sys.stdin.readline())))
