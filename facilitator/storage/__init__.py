"""The facilitator's object store (DESIGN.md §6): one interface, ``local``, ``s3`` and ``memory`` backends.

``get_store()`` gives the store configured in ``settings.GRID_STORAGES``; every store streams
uploads and downloads in chunks, records each object's sha256 and size, and hands out signed
URLs (a PUT URL write-once unless asked otherwise). The local and memory stores' URLs are
served by :mod:`facilitator.storage.urls`.
"""

from __future__ import annotations

from facilitator.storage.base import WRITE_ONCE_HEADERS, ObjectInfo, ObjectStore, validate_key
from facilitator.storage.errors import (
    InvalidKey,
    KeyConflict,
    ObjectExists,
    ObjectNotFound,
    ObjectTooLarge,
    StorageError,
    StorageMisconfigured,
    URLSignatureError,
)
from facilitator.storage.handler import get_store, stores
from facilitator.storage.streams import AsyncObjectReader, ObjectReader

__all__ = [
    "WRITE_ONCE_HEADERS",
    "AsyncObjectReader",
    "InvalidKey",
    "KeyConflict",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectReader",
    "ObjectStore",
    "ObjectTooLarge",
    "StorageError",
    "StorageMisconfigured",
    "URLSignatureError",
    "get_store",
    "stores",
    "validate_key",
]
