"""Chunk plumbing of the object store: what goes in, what comes out, sync and async.

:class:`Measured` hashes, counts and limits what a backend stores; :class:`ObjectReader` and
:class:`AsyncObjectReader` hand out what it reads; :class:`FileChunks` turns any readable file
(a local file, an S3 response body) into closable chunks.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import IO, Any

from facilitator.storage.errors import ObjectTooLarge

__all__ = [
    "CHUNK_SIZE",
    "AsyncObjectReader",
    "Data",
    "FileChunks",
    "Measured",
    "ObjectReader",
    "iter_chunks",
    "pull_from_loop",
]

CHUNK_SIZE = 1024 * 1024

Data = bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]


class ObjectReader:
    """The chunks of one object (or of a range of it); close it, or use it as a context manager.

    Streaming responses close it for you (``StreamingHttpResponse`` calls ``close()``).
    """

    def __init__(self, chunks: Iterator[bytes], key: str) -> None:
        self._chunks, self.key = chunks, key

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def __next__(self) -> bytes:
        return next(self._chunks)

    def read(self) -> bytes:
        """All remaining bytes at once: only for objects known to be small."""
        with self:
            return b"".join(self._chunks)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ObjectReader {self.key!r}>"


class FileChunks:
    """Chunks read from a file-like object (up to ``limit`` bytes); closing it closes the file.

    Unlike a generator, it closes the file also when it is closed before its first read.
    """

    def __init__(self, fh: Any, chunk_size: int = CHUNK_SIZE, limit: int | None = None) -> None:
        self._fh, self._chunk_size, self._remaining = fh, chunk_size, limit
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        size = self._chunk_size if self._remaining is None else min(self._chunk_size, self._remaining)
        chunk = self._fh.read(size) if size > 0 and not self._closed else b""
        if not chunk:
            self.close()
            raise StopIteration
        if self._remaining is not None:
            self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._fh.close()


class Measured:
    """The chunks being stored, hashed and counted as a backend consumes them.

    Backends iterate it once to the end; ``size`` and ``sha256`` are then final. It raises
    :class:`ObjectTooLarge` as soon as the limit is passed, before the offending chunk is handed
    out, so a backend's own cleanup runs as for any other failure mid-stream.
    """

    def __init__(self, key: str, chunks: Iterator[bytes], size_limit: int | None) -> None:
        self.key, self._chunks, self.size_limit = key, chunks, size_limit
        self.size = 0
        self._hash = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if not chunk:
                continue
            self.size += len(chunk)
            if self.size_limit is not None and self.size > self.size_limit:
                raise ObjectTooLarge(self.key, self.size_limit)
            self._hash.update(chunk)
            yield bytes(chunk) if not isinstance(chunk, bytes) else chunk


def iter_chunks(data: Data, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Bytes, a binary file or an iterable of bytes, as chunks of at most ``chunk_size`` (files, bytes)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data).cast("B")
        for offset in range(0, len(view), chunk_size):
            yield bytes(view[offset : offset + chunk_size])
    elif hasattr(data, "read"):
        while chunk := data.read(chunk_size):
            if isinstance(chunk, str):
                raise TypeError("files given to put() must be opened in binary mode")
            yield chunk
    elif isinstance(data, str):
        raise TypeError("put() stores bytes; encode text first")
    else:
        for chunk in data:
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(f"put() got a chunk of type {type(chunk).__name__}, expected bytes")
            yield chunk


class AsyncObjectReader:
    """An :class:`ObjectReader` read from a thread, one chunk at a time."""

    def __init__(self, reader: ObjectReader) -> None:
        self._reader = reader

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        chunk = await asyncio.to_thread(next, self._reader, None)
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def aread(self) -> bytes:
        async with self:
            return b"".join([chunk async for chunk in self])

    async def aclose(self) -> None:
        await asyncio.to_thread(self._reader.close)

    def close(self) -> None:
        """For closers that are sync, like ``StreamingHttpResponse.close()``."""
        self._reader.close()

    async def __aenter__(self) -> AsyncObjectReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncObjectReader {self._reader.key!r}>"


def pull_from_loop(chunks: AsyncIterable[bytes], loop: asyncio.AbstractEventLoop) -> Iterator[bytes]:
    """Iterate an async iterable from a worker thread, each step run on ``loop``."""
    iterator = aiter(chunks)

    async def step() -> Any:
        try:
            return await anext(iterator)
        except StopAsyncIteration:
            return _DONE

    while (chunk := asyncio.run_coroutine_threadsafe(step(), loop).result()) is not _DONE:
        yield chunk


_DONE = object()
