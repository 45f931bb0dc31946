"""Starts executor processes on this machine (the local spawner).

Each executor gets a fresh one-time ed25519 key: the seed goes to its stdin (never into an
environment a job could read), the miner keeps the public half and accepts exactly one
connection with it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field

from protocol.keys import Keypair

__all__ = ["LocalSpawner", "SpawnConfig"]


@dataclass
class SpawnConfig:
    miner_url: str
    miner_hotkey: str
    python: str = sys.executable
    runtime: str = "process"
    max_output: int = 1024 * 1024
    extra_env: dict[str, str] = field(default_factory=dict)


class LocalSpawner:
    def __init__(self, config: SpawnConfig) -> None:
        self.config = config

    async def spawn(self, keypair: Keypair) -> asyncio.subprocess.Process:
        env = {
            **os.environ,
            **self.config.extra_env,
            "GRID_MINER_URL": self.config.miner_url,
            "GRID_MINER_HOTKEY": self.config.miner_hotkey,
            "GRID_EXECUTOR_RUNTIME": self.config.runtime,
            "GRID_EXECUTOR_MAX_OUTPUT": str(self.config.max_output),
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.pop("GRID_SECRET_KEY", None)
        process = await asyncio.create_subprocess_exec(
            self.config.python, "-m", "executor", stdin=asyncio.subprocess.PIPE, env=env
        )
        assert process.stdin is not None
        process.stdin.write(keypair.seed_hex.encode() + b"\n")
        await process.stdin.drain()
        process.stdin.close()
        return process
