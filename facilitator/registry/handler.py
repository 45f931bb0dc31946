"""The facilitator's one registry, chosen by ``settings.GRID_REGISTRY``, and the validators its settings name.

``GRID_REGISTRY`` is ``"database"``, ``"static:/path/to/neurons.json"``, or the long form
``{"BACKEND": "database" | "static" | dotted.path, "OPTIONS": {...}}``. The registry is built on
first use and kept; ``override_settings(GRID_REGISTRY=...)`` starts over.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from facilitator.registry.backends import Registry
from facilitator.registry.errors import InvalidNeuron, RegistryMisconfigured
from protocol.backends import BackendError, resolve_backend
from protocol.registry import Role

__all__ = ["BACKENDS", "admits_validator", "backend_params", "create_registry", "get_registry", "seed_validators"]

log = logging.getLogger("grid.facilitator.registry")

BACKENDS = {
    "database": "facilitator.registry.backends.DatabaseRegistry",
    "static": "facilitator.registry.backends.StaticFileRegistry",
}


def backend_params(value: Any) -> dict[str, Any]:
    """``GRID_REGISTRY`` as ``{"BACKEND", "OPTIONS"}``, from its short string form too.

    Raises:
        RegistryMisconfigured: a value that names no backend.
    """
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value:
        raise RegistryMisconfigured(f"expected 'database' or 'static:/path/to/neurons.json', got {value!r}")
    name, _, argument = value.partition(":")
    if name == "static":
        if not argument:
            raise RegistryMisconfigured("'static:' needs a file, e.g. 'static:/etc/grid/neurons.json'")
        return {"BACKEND": "static", "OPTIONS": {"path": argument}}
    if argument:
        raise RegistryMisconfigured(f"only 'static:' takes a file, not {name!r}")
    return {"BACKEND": name, "OPTIONS": {}}


def create_registry(value: Any) -> Registry:
    params = backend_params(value)
    backend = params.get("BACKEND")
    if not isinstance(backend, str) or not backend:
        raise RegistryMisconfigured("BACKEND is missing")
    try:
        registry_class = resolve_backend(backend, BACKENDS, Registry)
    except BackendError as exc:
        raise RegistryMisconfigured(str(exc)) from exc
    try:
        return registry_class(**params.get("OPTIONS", {}))
    except (TypeError, ValueError) as exc:
        raise RegistryMisconfigured(f"the {backend} registry cannot start: {exc}") from exc


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """This facilitator's registry, built on first use from ``settings.GRID_REGISTRY`` and kept.

    Raises:
        RegistryMisconfigured: an unknown backend, or options (a static file) it cannot use.
    """
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = create_registry(getattr(settings, "GRID_REGISTRY", "database"))
        return _registry


def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    global _registry
    if setting == "GRID_REGISTRY":
        with _registry_lock:
            _registry = None


setting_changed.connect(_reset_on_change, dispatch_uid="facilitator.registry.reset")


# -- validators named by configuration -------------------------------------------------------------


def seed_validators(hotkeys: Iterable[str] | None = None, stake: float | None = None) -> list[str]:
    """Register every ``GRID_VALIDATOR_HOTKEYS`` hotkey as an active validator (run at startup).

    Returns the hotkeys that could not be: a read-only registry that lacks them, or a hotkey
    registered as a miner. Each is logged.
    """
    registry = get_registry()
    hotkeys = list(settings.FACILITATOR_VALIDATOR_HOTKEYS if hotkeys is None else hotkeys)
    stake = getattr(settings, "FACILITATOR_VALIDATOR_STAKE", 1.0) if stake is None else stake
    left_out = []
    for hotkey in hotkeys:
        known = registry.get(hotkey)
        if registry.read_only:
            if not (known is not None and known.role is Role.VALIDATOR and known.active):
                log.warning("GRID_VALIDATOR_HOTKEYS names %s, which %r lacks: it cannot connect", hotkey, registry)
                left_out.append(hotkey)
            continue
        if known is not None and known.role is not Role.VALIDATOR:
            log.error("GRID_VALIDATOR_HOTKEYS names %s, registered as a %s: not made a validator", hotkey, known.role)
            left_out.append(hotkey)
            continue
        try:
            registry.register(hotkey, Role.VALIDATOR, stake=stake)
        except InvalidNeuron as exc:
            log.error("GRID_VALIDATOR_HOTKEYS: %s: %s", hotkey, exc)
            left_out.append(hotkey)
    return left_out


def admits_validator(hotkey: str) -> bool:
    """May ``hotkey`` connect as a validator: an active validator in the registry.

    A hotkey that ``GRID_VALIDATOR_HOTKEYS`` names and the registry has never seen is registered
    first, as startup does for all of them; one the registry lists, even inactive, is judged by it.
    """
    registry = get_registry()
    if hotkey in settings.FACILITATOR_VALIDATOR_HOTKEYS and not registry.read_only and registry.get(hotkey) is None:
        seed_validators([hotkey])
    return registry.is_active(hotkey, Role.VALIDATOR)
