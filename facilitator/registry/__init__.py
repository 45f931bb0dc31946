"""The facilitator's registry (DESIGN.md §1, §3, §8): the validators and miners of this grid.

``get_registry()`` gives the backend ``settings.GRID_REGISTRY`` names (a database table, or a
static file); :mod:`facilitator.registry.views` serves its signed snapshot and takes miners'
announcements; the validator endpoint admits a hotkey with :func:`admits_validator`.
"""

from __future__ import annotations

from facilitator.registry.backends import DatabaseRegistry, Registry, StaticFileRegistry
from facilitator.registry.errors import (
    Deactivated,
    InvalidNeuron,
    NotRegistered,
    ReadOnlyRegistry,
    RegistryError,
    RegistryMisconfigured,
    RoleConflict,
)
from facilitator.registry.handler import admits_validator, create_registry, get_registry, seed_validators

__all__ = [
    "DatabaseRegistry",
    "Deactivated",
    "InvalidNeuron",
    "NotRegistered",
    "ReadOnlyRegistry",
    "Registry",
    "RegistryError",
    "RegistryMisconfigured",
    "RoleConflict",
    "StaticFileRegistry",
    "admits_validator",
    "create_registry",
    "get_registry",
    "seed_validators",
]
