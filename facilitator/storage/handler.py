"""Object stores by alias, from ``settings.GRID_STORAGES`` (the shape of Django's ``STORAGES``).

::

    GRID_STORAGES = {
        "default": {"BACKEND": "local", "OPTIONS": {"root": "/srv/grid/objects"}},
        "archive": {"BACKEND": "s3", "OPTIONS": {"bucket": "grid", "endpoint_url": "http://..."}},
    }

``BACKEND`` is a short name (``local``, ``s3``, ``memory``) or a dotted class path. Each store is
built on first use and kept, one per alias; ``override_settings(GRID_STORAGES=...)`` starts over.
Without the setting, ``default`` is a local store under ``$GRID_HOME/objects``.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from facilitator.storage.base import ObjectStore
from facilitator.storage.errors import StorageMisconfigured
from protocol.backends import BackendError, resolve_backend

__all__ = ["BACKENDS", "StorageHandler", "get_store", "stores"]

BACKENDS = {
    "local": "facilitator.storage.local.LocalObjectStore",
    "memory": "facilitator.storage.memory.MemoryObjectStore",
    "s3": "facilitator.storage.s3.S3ObjectStore",
}
DEFAULT_STORAGES = {"default": {"BACKEND": "local", "OPTIONS": {}}}


class StorageHandler:
    def __init__(self, backends: dict[str, dict[str, Any]] | None = None) -> None:
        self._configured = backends
        self._stores: dict[str, ObjectStore] = {}
        self._lock = threading.Lock()

    @property
    def backends(self) -> dict[str, dict[str, Any]]:
        if self._configured is not None:
            return self._configured
        return getattr(settings, "GRID_STORAGES", DEFAULT_STORAGES)

    def __getitem__(self, alias: str) -> ObjectStore:
        with self._lock:  # two threads asking at once must share one store
            if alias not in self._stores:
                try:
                    params = self.backends[alias]
                except KeyError:
                    raise StorageMisconfigured(alias, "no such alias in settings.GRID_STORAGES") from None
                self._stores[alias] = self.create_store(alias, params)
            return self._stores[alias]

    def create_store(self, alias: str, params: dict[str, Any]) -> ObjectStore:
        backend = params.get("BACKEND")
        if not isinstance(backend, str) or not backend:
            raise StorageMisconfigured(alias, "BACKEND is missing")
        try:
            store_class = resolve_backend(backend, BACKENDS, ObjectStore)
        except BackendError as exc:
            raise StorageMisconfigured(alias, str(exc)) from exc
        try:
            store = store_class(**params.get("OPTIONS", {}))
        except (TypeError, ValueError) as exc:
            raise StorageMisconfigured(alias, f"bad OPTIONS for {backend!r}: {exc}") from exc
        store.alias = alias
        return store

    def reset(self) -> None:
        with self._lock:
            self._stores.clear()


stores = StorageHandler()


def get_store(alias: str = "default") -> ObjectStore:
    """The store configured as ``alias`` in ``settings.GRID_STORAGES``.

    Raises:
        StorageMisconfigured: unknown alias or backend, or options the backend refuses.
    """
    return stores[alias]


def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting in ("GRID_STORAGES", "GRID_HOME", "SECRET_KEY"):
        stores.reset()


setting_changed.connect(_reset_on_change, dispatch_uid="facilitator.storage.reset")
