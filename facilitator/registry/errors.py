"""What the registry refuses, and what the API answers for it (``status``, ``code``).

RegistryError              base: ``status`` and ``code`` of the API's answer
├── InvalidNeuron          400: a bad hotkey, stake, address or role (``invalid_address`` …)
├── NotRegistered          403: an unknown hotkey (a closed registry)
├── Deactivated            403: a neuron the operator deactivated
├── ReadOnlyRegistry       403: a static registry
└── RoleConflict           409: a validator's hotkey announcing as a miner
RegistryMisconfigured      ``GRID_REGISTRY`` names no usable backend (an ``ImproperlyConfigured``)
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "Deactivated",
    "InvalidNeuron",
    "NotRegistered",
    "ReadOnlyRegistry",
    "RegistryError",
    "RegistryMisconfigured",
    "RoleConflict",
]


class RegistryError(Exception):
    """A change the registry refuses; ``status`` and ``code`` are what the API answers."""

    status = 400
    code = "registry_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidNeuron(RegistryError):
    code = "invalid_neuron"


class NotRegistered(RegistryError):
    status, code = 403, "not_registered"


class Deactivated(RegistryError):
    status, code = 403, "deactivated"


class ReadOnlyRegistry(RegistryError):
    status, code = 403, "read_only"


class RoleConflict(RegistryError):
    status, code = 409, "role_conflict"


class RegistryMisconfigured(ImproperlyConfigured):
    def __init__(self, problem: str) -> None:
        super().__init__(f"GRID_REGISTRY: {problem}")
