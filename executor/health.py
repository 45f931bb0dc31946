"""Starting a streaming job: a port for it on loopback, and waiting until it answers ``GET /health``."""

from __future__ import annotations

import asyncio
import socket

import httpx

__all__ = ["HEALTH_PATH", "free_loopback_port", "wait_healthy"]

HEALTH_PATH = "/health"
POLL_S = 0.05


def free_loopback_port() -> int:
    """A port free on 127.0.0.1 right now (the job binds it moments later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_healthy(port: int, job: asyncio.Future, limit: float) -> bool:
    """Poll ``http://127.0.0.1:<port>/health`` until it answers 2xx (``True``), or the job ends or
    ``limit`` seconds pass (``False``)."""
    url = f"http://127.0.0.1:{port}{HEALTH_PATH}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    async with httpx.AsyncClient(timeout=httpx.Timeout(1.0), trust_env=False) as client:
        while loop.time() < deadline and not job.done():
            try:
                response = await client.get(url, timeout=max(0.05, min(1.0, deadline - loop.time())))
                if response.is_success:
                    return True
            except httpx.HTTPError:
                pass  # not listening yet
            await asyncio.sleep(POLL_S)
    return False
