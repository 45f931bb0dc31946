"""The object store's contract (DESIGN.md §6): keys, streaming, sha256 and size, signed URLs.

Like Django's ``Storage`` (``django/core/files/storage/base.py``), the public methods here do the
shared work — validate the key, chunk the input, hash and count it, enforce the size limit — and
call underscore hooks that each backend fills. Every method has an ``a``-twin (``aput``,
``aopen``, ...) that runs the sync method in a thread unless a backend does better, as Django's
cache backends do.

Signed PUT URLs are write-once by default: the first PUT stores the object and records its
sha256 and size, a later PUT to the same key is refused (409 ``object_exists``) and changes
nothing. The bearer of a write-once URL sends :data:`WRITE_ONCE_HEADERS` with its PUT (S3 checks
the condition itself, and refuses a PUT without the header it signed); ``overwrite=True`` signs a
URL that may replace the object, for writers that retry (a job's outputs, across attempts).

Errors live in :mod:`facilitator.storage.errors`, the chunk plumbing in
:mod:`facilitator.storage.streams`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from facilitator.storage.errors import InvalidKey, ObjectNotFound
from facilitator.storage.streams import (
    CHUNK_SIZE,
    AsyncObjectReader,
    Data,
    Measured,
    ObjectReader,
    iter_chunks,
    pull_from_loop,
)

__all__ = ["MAX_KEY_BYTES", "MAX_URL_EXPIRY_S", "WRITE_ONCE_HEADERS", "ObjectInfo", "ObjectStore", "validate_key"]

MAX_KEY_BYTES = 1024  # S3's limit, applied to every backend so keys stay portable
MAX_URL_EXPIRY_S = 7 * 24 * 3600  # S3's limit for pre-signed URLs, likewise
SIGNED_METHODS = ("GET", "PUT")
#: headers the bearer of a write-once PUT URL sends with it (HTTP's "only if nothing is there")
WRITE_ONCE_HEADERS = {"If-None-Match": "*"}


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    sha256: str
    created: datetime

    def __repr__(self) -> str:
        return f"<ObjectInfo {self.key!r} {self.size} bytes sha256={self.sha256[:12]}…>"


def validate_key(key: object) -> str:
    """Refuse keys that could escape a directory or mean two things, like ``safe_join`` does.

    Raises:
        InvalidKey: not a string, empty, absolute, with an empty, ``.`` or ``..`` part, a
            backslash or a control character, or longer than 1024 bytes in UTF-8.
    """
    if not isinstance(key, str):
        raise InvalidKey(key, "keys are strings")
    if not key:
        raise InvalidKey(key, "empty key")
    if key.startswith("/"):
        raise InvalidKey(key, "absolute key")
    if "\\" in key or any(ord(char) < 32 or ord(char) == 127 for char in key):
        raise InvalidKey(key, "backslash or control character")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(key, f"longer than {MAX_KEY_BYTES} bytes")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKey(key, f"empty, '.' or '..' path segment ({part!r})")
    return key


class ObjectStore:
    """Base class of the object stores; subclasses fill the underscore hooks.

    Args:
        max_size: default ``size_limit`` of :meth:`put`, in bytes (``None``: unlimited).
        chunk_size: how much one read or write moves at a time.
    """

    alias: str = "?"  # set by the handler

    def __init__(self, *, max_size: int | None = None, chunk_size: int = CHUNK_SIZE) -> None:
        self.max_size, self.chunk_size = max_size, chunk_size

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.alias!r}>"

    # -- the contract ------------------------------------------------------------------------------

    def put(self, key: str, data: Data, size_limit: int | None = None, *, overwrite: bool = True) -> ObjectInfo:
        """Store ``data`` under ``key``, streaming it, replacing any object there atomically.

        Args:
            data: bytes, a binary file, or an iterable of bytes chunks (never read whole).
            size_limit: refuse objects larger than this many bytes (default: the store's
                ``max_size``).
            overwrite: ``False`` writes only if no object is there, checked atomically with the
                write (two racing writers: one wins, the other gets :class:`ObjectExists`).

        Returns:
            the new object's :class:`ObjectInfo`, with the sha256 and size of what was stored.

        Raises:
            InvalidKey, ObjectTooLarge, ObjectExists; on any error, no object or temporary file is left behind
            and a previous object under ``key`` is untouched.
        """
        key = validate_key(key)
        limit = self.max_size if size_limit is None else size_limit
        return self._put(key, Measured(key, iter_chunks(data, self.chunk_size), limit), overwrite)

    def open(self, key: str, start: int = 0, end: int | None = None) -> ObjectReader:
        """The object's bytes ``[start:end]`` as a stream of chunks (slice semantics, clamped).

        Raises:
            ObjectNotFound: at once, not on the first read.
        """
        key = validate_key(key)
        if start < 0 or (end is not None and end < 0):
            raise ValueError("start and end are byte offsets from the beginning, never negative")
        if end is not None and end < start:
            end = start
        return ObjectReader(self._open(key, start, end), key)

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """The object's bytes ``[start:end]`` at once: only for small objects or ranges."""
        return self.open(key, start, end).read()

    def stat(self, key: str) -> ObjectInfo:
        return self._stat(validate_key(key))

    def exists(self, key: str) -> bool:
        return self._exists(validate_key(key))

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""
        self._delete(validate_key(key))

    def signed_url(self, key: str, method: str = "GET", expires_s: int = 3600, *, overwrite: bool = False) -> str:
        """A URL that lets its bearer ``GET`` or ``PUT`` this one key for ``expires_s`` seconds.

        Args:
            overwrite: for ``PUT``, whether the URL may replace an object already there. By
                default a PUT URL is write-once: it stores an object only where there is none
                (sent with :data:`WRITE_ONCE_HEADERS`), and a second PUT answers 409.
        """
        key = validate_key(key)
        method = method.upper()
        if method not in SIGNED_METHODS:
            raise ValueError(f"signed URLs are for {' or '.join(SIGNED_METHODS)}, not {method}")
        if not 0 < expires_s <= MAX_URL_EXPIRY_S:
            raise ValueError(f"expires_s must be between 1 and {MAX_URL_EXPIRY_S}")
        return self._signed_url(key, method, int(expires_s), method == "PUT" and overwrite)

    # -- async twins: a thread each, unless a backend does better ----------------------------------

    async def aput(
        self, key: str, data: Data | AsyncIterable[bytes], size_limit: int | None = None, *, overwrite: bool = True
    ) -> ObjectInfo:
        """:meth:`put`, also accepting an async iterable of chunks (pulled from this event loop)."""
        if hasattr(data, "__aiter__"):
            data = pull_from_loop(data, asyncio.get_running_loop())  # type: ignore[arg-type]
        return await asyncio.to_thread(self.put, key, data, size_limit, overwrite=overwrite)  # type: ignore[arg-type]

    async def aopen(self, key: str, start: int = 0, end: int | None = None) -> AsyncObjectReader:
        """:meth:`open` for ``async for``: ``async with await store.aopen(key) as chunks: ...``."""
        return AsyncObjectReader(await asyncio.to_thread(self.open, key, start, end))

    async def aread(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        return await asyncio.to_thread(self.read, key, start, end)

    async def astat(self, key: str) -> ObjectInfo:
        return await asyncio.to_thread(self.stat, key)

    async def aexists(self, key: str) -> bool:
        return await asyncio.to_thread(self.exists, key)

    async def adelete(self, key: str) -> None:
        await asyncio.to_thread(self.delete, key)

    async def asigned_url(
        self, key: str, method: str = "GET", expires_s: int = 3600, *, overwrite: bool = False
    ) -> str:
        return await asyncio.to_thread(self.signed_url, key, method, expires_s, overwrite=overwrite)

    # -- hooks -------------------------------------------------------------------------------------

    def _put(self, key: str, chunks: Measured, overwrite: bool) -> ObjectInfo:
        raise NotImplementedError(f"{type(self).__name__} must provide a _put() method")

    def _open(self, key: str, start: int, end: int | None) -> Iterator[bytes]:
        raise NotImplementedError(f"{type(self).__name__} must provide an _open() method")

    def _stat(self, key: str) -> ObjectInfo:
        raise NotImplementedError(f"{type(self).__name__} must provide a _stat() method")

    def _exists(self, key: str) -> bool:
        try:
            self._stat(key)
        except ObjectNotFound:
            return False
        return True

    def _delete(self, key: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must provide a _delete() method")

    def _signed_url(self, key: str, method: str, expires_s: int, overwrite: bool) -> str:
        raise NotImplementedError(f"{type(self).__name__} does not hand out signed URLs")
