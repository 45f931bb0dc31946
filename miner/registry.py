"""The miner's view of the registry (DESIGN.md §3): who may connect as a validator, and our address.

With ``GRID_FACILITATOR_API`` set, the periodic task ``miner.tasks.sync_registry`` announces
``GRID_MINER_ADDRESS`` to the facilitator and keeps its signed snapshot (checked against
``GRID_FACILITATOR_HOTKEY``) in memory and under ``GRID_HOME/registry/``. A validator may then
connect if the snapshot lists it as an active validator, or if ``GRID_MINER_VALIDATOR_HOTKEYS``
names it (the static list, which is all there is without a facilitator API).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from grid.identity import own_keypair
from grid.registry_client import RegistryClient
from protocol.registry import RegistrySnapshot, Role

__all__ = ["admits_validator", "get_registry", "sync"]

log = logging.getLogger("grid.miner.registry")

_client: RegistryClient | None = None
_lock = threading.Lock()


def get_registry() -> RegistryClient | None:
    """The miner's registry client, or ``None`` without ``GRID_FACILITATOR_API``.

    Raises:
        ImproperlyConfigured: an API without the facilitator's hotkey, or a malformed URL.
    """
    global _client
    api = getattr(settings, "MINER_FACILITATOR_API", "")
    if not api:
        return None
    with _lock:
        if _client is None:
            hotkey = getattr(settings, "MINER_FACILITATOR_HOTKEY", "")
            if not hotkey:
                raise ImproperlyConfigured(
                    "GRID_FACILITATOR_API is set but GRID_FACILITATOR_HOTKEY is not: the registry's "
                    "signature cannot be checked (`grid keys show facilitator` on the facilitator)"
                )
            keypair = own_keypair()
            cache = Path(settings.GRID_HOME) / "registry" / f"miner-{keypair.hotkey[:16]}.json"
            try:
                _client = RegistryClient(api, hotkey, cache, keypair)
            except ValueError as exc:
                raise ImproperlyConfigured(f"GRID_FACILITATOR_API / GRID_FACILITATOR_HOTKEY: {exc}") from exc
        return _client


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


def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    global _client
    if setting in ("MINER_FACILITATOR_API", "MINER_FACILITATOR_HOTKEY", "GRID_HOME"):
        with _lock:
            _client = None


setting_changed.connect(_reset_on_change, dispatch_uid="miner.registry.reset")
