"""The connector's connections, kept in a JSON file for whoever supervises it (``grid up``, a health check).

::

    {"hotkey": "...", "pid": 1234, "facilitator": true, "miners": {"<hotkey>": true, ...}, "at": 1700000000.0}

Written again (whole, under a temporary name, then renamed) whenever a connection opens or
closes, or a miner is added or dropped.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from protocol.transport import ReconnectingClient

__all__ = ["StatusFile"]

log = logging.getLogger("grid.validator")


class StatusFile:
    """Args:
    path: the file; ``None`` writes nothing.
    describe: returns the state to write (called at each change).
    """

    def __init__(self, path: str | os.PathLike[str] | None, describe: Callable[[], dict[str, Any]]) -> None:
        self.path = Path(path) if path else None
        self.describe = describe

    def __repr__(self) -> str:
        return f"<StatusFile {self.path}>"

    def track(self, clients: Iterable[ReconnectingClient]) -> None:
        """Write the file whenever one of ``clients`` connects or disconnects (after their own hooks)."""
        for client in clients:
            connected, lost = client.on_connect, client.on_disconnect

            async def on_connect(connection: Any, connected: Any = connected) -> None:
                if connected is not None:
                    await connected(connection)
                self.write()

            async def on_disconnect(lost: Any = lost) -> None:
                if lost is not None:
                    await lost()
                self.write()

            client.on_connect, client.on_disconnect = on_connect, on_disconnect

    def write(self) -> None:
        if self.path is None:
            return
        state = {**self.describe(), "pid": os.getpid(), "at": time.time()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.tmp")
            partial.write_text(json.dumps(state, indent=1))
            os.replace(partial, self.path)
        except OSError as exc:
            log.warning("could not write the status file %s: %s", self.path, exc)
