"""The miner's view of the registry (DESIGN.md §3): who may connect as a validator, and our address.

With ``GRID_FACILITATOR_API`` set, the periodic task ``miner.tasks.sync_registry`` announces
``GRID_MINER_ADDRESS`` to the facilitator and keeps its signed snapshot (checked against
``GRID_FACILITATOR_HOTKEY``) in memory and under ``GRID_HOME/registry/``. A validator may then
connect if the snapshot lists it as an active validator, or if ``GRID_MINER_VALIDATOR_HOTKEYS``
names it (the static list, which is all there is without a facilitator API).
"""

from __future__ import annotations

import logging

from django.conf import settings

from node import registry_client
from node.registry_client import RegistryClient
from protocol.registry import RegistrySnapshot, Role

__all__ = ["admits_validator", "get_registry", "sync"]

log = logging.getLogger("grid.miner.registry")


def get_registry() -> RegistryClient | None:
    """The miner's registry client (:func:`node.registry_client.get_registry`)."""
    return registry_client.get_registry(Role.MINER)


def sync() -> RegistrySnapshot | None:
    """Announce our address (when configured), then fetch and keep the snapshot."""
    registry = get_registry()
    if registry is None:
        return None
    return registry.sync(address=getattr(settings, "MINER_ADDRESS", "") or None)


def admits_validator(hotkey: str) -> bool:
    """May ``hotkey`` connect as a validator: in the static list, or active in the synced registry."""
    if hotkey in settings.MINER_VALIDATOR_HOTKEYS:
        return True
    registry = get_registry()
    return registry is not None and registry.is_active(hotkey, Role.VALIDATOR)


def check() -> None:
    """Fail at startup, not at the first handshake, on a registry that cannot work; say what is off."""
    if get_registry() is not None and not getattr(settings, "MINER_ADDRESS", ""):
        log.warning("GRID_MINER_ADDRESS is not set: this miner does not announce where validators reach it")
