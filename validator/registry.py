"""The validator's view of the registry (DESIGN.md §8): which miners it dials.

With ``GRID_FACILITATOR_API`` set, the periodic task ``validator.tasks.sync_registry`` fetches
the facilitator's signed snapshot (checked against ``GRID_FACILITATOR_HOTKEY``) and keeps it in
memory and under ``GRID_HOME/registry/``; :class:`MinerDirectory` then keeps the connector's
miner connections in line with it: every active miner with an address is dialled, with its
registered hotkey pinned, and a miner that leaves the registry, or becomes inactive, or moves, is
hung up on. A hotkey the registry does not list is never dialled. Without a facilitator API the
connector dials the static ``GRID_MINERS`` list instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from node import registry_client
from node.registry_client import RegistryClient
from protocol.registry import RegistrySnapshot, Role

if TYPE_CHECKING:
    from validator.connector import Connector

__all__ = ["MinerDirectory", "get_registry", "registered_miners", "sync"]

log = logging.getLogger("grid.validator.registry")


def get_registry() -> RegistryClient | None:
    """The validator's registry client (:func:`node.registry_client.get_registry`)."""
    return registry_client.get_registry(Role.VALIDATOR)


def sync() -> RegistrySnapshot | None:
    registry = get_registry()
    return registry.sync() if registry is not None else None


def registered_miners(snapshot: RegistrySnapshot) -> dict[str, str]:
    """``{hotkey: url}`` of the miners to dial: active, with an address."""
    return {neuron.hotkey: neuron.validator_url for neuron in snapshot.of_role(Role.MINER) if neuron.address}


class MinerDirectory:
    """Follows the registry for a :class:`~validator.connector.Connector`.

    Args:
        connector: whose ``add_miner`` / ``drop_miner`` it calls.
        registry: the snapshot source; its changes wake the directory at once when the sync runs
            in this process, and a look every ``interval`` seconds catches a Celery worker's.
    """

    def __init__(self, connector: Connector, registry: RegistryClient, interval: float = 30.0) -> None:
        self.connector = connector
        self.registry = registry
        self.interval = interval
        self.version: int | None = None
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        registry.subscribe(self._on_change)

    def __repr__(self) -> str:
        return f"<MinerDirectory version={self.version} miners={len(self.connector.miners)}>"

    async def first_snapshot(self) -> RegistrySnapshot:
        """Wait until a snapshot is known (kept from a previous run, or the first sync's) and apply it."""
        loop = asyncio.get_running_loop()
        since = loop.time()
        while (snapshot := self.registry.current()) is None:
            if loop.time() - since >= 30:
                log.warning("still waiting for the registry from %s", self.registry.api_url)
                since = loop.time()
            await self._wait()
        await self.apply(snapshot)
        return snapshot

    async def run(self) -> None:
        while True:
            await self._wait()
            snapshot = self.registry.current()
            if snapshot is not None:
                await self.apply(snapshot)

    async def apply(self, snapshot: RegistrySnapshot) -> None:
        """Dial the registered miners not dialled yet; hang up on the others."""
        wanted = registered_miners(snapshot)
        for miner in list(self.connector.miners):
            if wanted.get(miner.hotkey) != miner.client.url:
                why = "moved" if miner.hotkey in wanted else "no longer an active registered miner"
                log.info("dropping miner %s…: %s", miner.hotkey[:12], why)
                await self.connector.drop_miner(miner.hotkey)
        known = {miner.hotkey for miner in self.connector.miners}
        for hotkey, url in wanted.items():
            if hotkey not in known:
                log.info("dialling registered miner %s… at %s", hotkey[:12], url)
                self.connector.add_miner(hotkey, url)
        self.version = snapshot.version

    async def _wait(self) -> None:
        """Until the registry changes in this process, or ``interval`` seconds."""
        if self._changed is None:
            self._loop, self._changed = asyncio.get_running_loop(), asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), self.interval)
        self._changed.clear()

    def _on_change(self, snapshot: RegistrySnapshot) -> None:
        # Called on the thread that synced (the embedded beat's): hand over to the event loop.
        if self._loop is not None and self._changed is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the connector stopped
                self._loop.call_soon_threadsafe(self._changed.set)
