"""An object store in this process's memory, for tests (like Django's ``InMemoryStorage``).

Objects vanish with the process and are held whole in memory. Signed URLs work as the local
backend's do (HMAC, served by :mod:`facilitator.storage.views`).

Options: ``secret``, ``base_url`` (see :class:`~facilitator.storage.signing.UrlSigner`),
``max_size``, ``chunk_size``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

from facilitator.storage.base import ObjectInfo, ObjectStore
from facilitator.storage.errors import ObjectExists, ObjectNotFound
from facilitator.storage.signing import DEFAULT_BASE_URL, UrlSigner
from facilitator.storage.streams import Measured

__all__ = ["MemoryObjectStore"]


class MemoryObjectStore(ObjectStore):
    def __init__(self, *, secret: str | bytes | None = None, base_url: str = DEFAULT_BASE_URL, **options) -> None:
        super().__init__(**options)
        self.url_signer = UrlSigner(secret, base_url)
        self._objects: dict[str, tuple[bytes, ObjectInfo]] = {}
        self._lock = threading.Lock()

    def _put(self, key: str, chunks: Measured, overwrite: bool) -> ObjectInfo:
        data = b"".join(chunks)  # stored only once every chunk arrived: a failure leaves nothing
        info = ObjectInfo(key, chunks.size, chunks.sha256, datetime.now(UTC))
        with self._lock:
            if not overwrite and key in self._objects:
                raise ObjectExists(key)
            self._objects[key] = (data, info)
        return info

    def _get(self, key: str) -> tuple[bytes, ObjectInfo]:
        with self._lock:
            try:
                return self._objects[key]
            except KeyError:
                raise ObjectNotFound(key) from None

    def _open(self, key: str, start: int, end: int | None) -> Iterator[bytes]:
        data = memoryview(self._get(key)[0])[start:end]
        return (bytes(data[i : i + self.chunk_size]) for i in range(0, len(data), self.chunk_size))

    def _stat(self, key: str) -> ObjectInfo:
        return self._get(key)[1]

    def _delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def _signed_url(self, key: str, method: str, expires_s: int, overwrite: bool) -> str:
        return self.url_signer.url_for(method, key, expires_s, overwrite)
