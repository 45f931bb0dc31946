"""``python -m executor``: started by the miner with its one-time key on stdin (never in the env).

Environment: ``GRID_MINER_URL`` (the miner's executor endpoint), ``GRID_MINER_HOTKEY`` (pinned),
``GRID_EXECUTOR_RUNTIME`` (``process``), ``GRID_EXECUTOR_MAX_OUTPUT`` (bytes per stream).
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
from protocol.transport import connect

log = logging.getLogger("grid.executor")


async def main() -> int:
    logging.basicConfig(
        level=os.environ.get("GRID_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s %(levelname)s executor[{os.getpid()}]: %(message)s",
    )
    keypair = Keypair.from_seed_hex(sys.stdin.readline())
    runtime = load_runtime(os.environ.get("GRID_EXECUTOR_RUNTIME", "process"))
    config = ExecutorConfig(max_output=int(os.environ.get("GRID_EXECUTOR_MAX_OUTPUT", str(1024 * 1024))))
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
    finally:
        await connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
