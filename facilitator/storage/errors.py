"""The object store's errors.

::

    StorageError
    ├── ObjectNotFound
    ├── ObjectTooLarge
    ├── ObjectExists      (a write-once put found an object there)
    └── KeyConflict
    InvalidKey            (SuspiciousOperation: logged under django.security.InvalidKey)
    URLSignatureError     (SuspiciousOperation)
    StorageMisconfigured  (ImproperlyConfigured, names the alias)
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation

__all__ = [
    "InvalidKey",
    "KeyConflict",
    "ObjectExists",
    "ObjectNotFound",
    "ObjectTooLarge",
    "StorageError",
    "StorageMisconfigured",
    "URLSignatureError",
]


class StorageError(Exception):
    """Base class of the object store's runtime errors."""


class ObjectNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no object {key!r}")
        self.key = key


class ObjectTooLarge(StorageError):
    def __init__(self, key: str, size_limit: int) -> None:
        super().__init__(f"object {key!r} is larger than {size_limit} bytes")
        self.key, self.size_limit = key, size_limit


class ObjectExists(StorageError):
    """A write-once :meth:`~facilitator.storage.base.ObjectStore.put` found an object at its key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"object {key!r} was written already and cannot be replaced")
        self.key = key


class KeyConflict(StorageError):
    """A filesystem-backed store cannot hold both ``a`` and ``a/b``."""


class InvalidKey(SuspiciousOperation):
    def __init__(self, key: object, reason: str) -> None:
        super().__init__(f"invalid object key {key!r}: {reason}")
        self.key, self.reason = key, reason


class URLSignatureError(SuspiciousOperation):
    """A signed URL that is expired (``code="url_expired"``) or not ours (``"bad_signature"``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class StorageMisconfigured(ImproperlyConfigured):
    def __init__(self, alias: str, message: str) -> None:
        super().__init__(f"GRID_STORAGES[{alias!r}]: {message}")
        self.alias = alias
