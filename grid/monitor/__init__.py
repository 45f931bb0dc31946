"""``grid monitor``: a local web page for a client's own jobs, live (docs/monitor.md).

The client's key never leaves the client's machine, so the monitor is a small web server there,
on 127.0.0.1 only, the way Dask's and Ray's dashboards run beside the work: it signs its calls to
the facilitator with the client's key (the SDK's :class:`~facilitator_sdk.AsyncClient`) and pushes
what changes to the browser as Server-Sent Events, fed by the facilitator's event stream.

- :mod:`~grid.monitor.feed`: the jobs the monitor knows, kept current, fanned out to pages;
- :mod:`~grid.monitor.app`: the ASGI app (routes, ``/events``, static files, the ``Host`` check);
- :mod:`~grid.monitor.http`: the bits of plain ASGI it needs (no web framework);
- :mod:`~grid.monitor.pages`: one module per page (jobs, job; task graphs to come).
"""

from __future__ import annotations

import asyncio
import signal

import uvicorn

from facilitator_sdk import AsyncClient
from grid.monitor.app import Monitor

__all__ = ["HOST", "Monitor", "serve"]

HOST = "127.0.0.1"  # never another interface: the pages show the client's jobs to whoever reaches them


def serve(client: AsyncClient, port: int, poll_s: float | None = None, ready: str | None = None) -> None:
    """Serve the monitor on ``127.0.0.1:port`` until interrupted (Ctrl-C, SIGTERM).

    Args:
        client: the signed client (closed when the server stops).
        port: the local port (0: any free one; the line printed says which).
        poll_s: how often the job list is read for new jobs.
        ready: printed once listening, ``{url}`` replaced by the monitor's address.
    """
    config = uvicorn.Config(
        Monitor(client, poll_s),
        host=HOST,
        port=port,
        lifespan="on",
        log_level="warning",
        access_log=False,  # paths carry job ids only, but a quiet terminal is the point
        timeout_graceful_shutdown=2,  # open event streams never end by themselves
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                return await task
            await asyncio.sleep(0.05)
        if ready is not None:
            bound = server.servers[0].sockets[0].getsockname()[1]
            print(ready.replace("{url}", f"http://{HOST}:{bound}/"), flush=True)
        await task

    # uvicorn stops on SIGINT/SIGTERM, then raises the signal again for the handler it found:
    # a quiet one here, so that stopping the monitor is a clean exit (0), not a kill.
    quiet = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        asyncio.run(main())
    finally:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
