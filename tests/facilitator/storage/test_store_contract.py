"""One contract, every backend: :class:`StoreContract` runs against memory, local and S3 stores.

As Django's ``tests/file_storage`` does, each backend is a subclass that only says how to build
its store (through ``settings.GRID_STORAGES`` and ``get_store()``, so the handler is in the loop)
and how to follow one of its signed URLs.
"""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.exceptions import SuspiciousOperation
from django.test import Client, override_settings

from facilitator.storage import (
    WRITE_ONCE_HEADERS,
    InvalidKey,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    get_store,
)

MiB = 1024 * 1024
INVALID_KEYS = ["../x", "/abs", "a//b", "", "a/./b", "a/..", "a/", ".", "a\\b", "nul\x00", "k" * 1025]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Generated:
    """``size`` pseudo-random bytes made lazily in 64 KiB chunks, hashed as they go out."""

    def __init__(self, size: int, chunk: int = 64 * 1024) -> None:
        self.size, self.chunk = size, chunk
        self.hash = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        block = hashlib.sha512(b"seed").digest() * (self.chunk // 64)
        for offset in range(0, self.size, self.chunk):
            piece = (offset.to_bytes(8, "big") + block)[: min(self.chunk, self.size - offset)]
            self.hash.update(piece)
            yield piece


class Crashing:
    """Chunks that fail halfway, like a client that disconnects mid-upload."""

    def __init__(self, chunks: int = 4) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            yield b"x" * 1000
        raise ConnectionError("client went away")


class StoreContract:
    backend: str
    #: peak Python allocations allowed while moving 20 MiB (None: the backend keeps objects in memory)
    streaming_peak: int | None = 8 * MiB
    #: the answer to a second PUT of a write-once URL (S3 answers its failed condition itself)
    exists_status = 409

    @pytest.fixture
    def options(self) -> dict[str, Any]:
        raise NotImplementedError

    @pytest.fixture
    def store(self, options: dict[str, Any]) -> Iterator[ObjectStore]:
        with override_settings(GRID_STORAGES={"default": {"BACKEND": self.backend, "OPTIONS": options}}):
            yield get_store()

    def fetch(self, url: str) -> tuple[int, bytes]:
        raise NotImplementedError

    def upload(self, url: str, data: bytes) -> int:
        raise NotImplementedError

    # -- put and stat ------------------------------------------------------------------------------

    def test_put_records_sha256_and_size(self, store: ObjectStore) -> None:
        data = b"hello object store" * 100
        info = store.put("jobs/1/out.txt", data)
        assert isinstance(info, ObjectInfo)
        assert (info.key, info.size, info.sha256) == ("jobs/1/out.txt", len(data), sha256(data))
        assert isinstance(info.created, datetime) and info.created.tzinfo is not None
        stat = store.stat("jobs/1/out.txt")
        assert (stat.key, stat.size, stat.sha256) == (info.key, info.size, info.sha256)

    @pytest.mark.parametrize(
        "make", [lambda d: d, io.BytesIO, lambda d: [d[:3], b"", d[3:]], lambda d: iter([bytearray(d)])]
    )
    def test_put_accepts_bytes_files_and_iterables(self, store: ObjectStore, make: Any) -> None:
        data = b"0123456789abcdef"
        assert store.put("k", make(data)).sha256 == sha256(data)
        assert store.read("k") == data

    def test_empty_object(self, store: ObjectStore) -> None:
        info = store.put("empty", b"")
        assert (info.size, info.sha256) == (0, sha256(b""))
        assert store.read("empty") == b""
        assert store.read("empty", 0, 10) == b""

    def test_put_refuses_text(self, store: ObjectStore) -> None:
        with pytest.raises(TypeError):
            store.put("k", "text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            store.put("k", ["text"])  # type: ignore[list-item]
        assert not store.exists("k")

    def test_overwrite_replaces_object_and_digest(self, store: ObjectStore) -> None:
        store.put("k", b"first version")
        info = store.put("k", b"second")
        assert store.read("k") == b"second"
        assert store.stat("k").sha256 == info.sha256 == sha256(b"second")
        assert store.stat("k").size == 6

    def test_unicode_key(self, store: ObjectStore) -> None:
        key = "dir/ünï cödé %20+?.txt"
        store.put(key, b"data")
        assert store.read(key) == b"data"
        assert store.stat(key).key == key

    # -- reading -----------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("start", "end"), [(0, None), (2, 7), (5, None), (0, 1), (9, 10), (3, 100), (10, None), (50, None), (4, 4)]
    )
    def test_range_reads_follow_slice_semantics(self, store: ObjectStore, start: int, end: int | None) -> None:
        data = b"0123456789"
        store.put("r", data)
        assert store.read("r", start, end) == data[start:end]
        with store.open("r", start, end) as chunks:
            assert b"".join(chunks) == data[start:end]

    def test_negative_offsets_refused(self, store: ObjectStore) -> None:
        store.put("r", b"abc")
        with pytest.raises(ValueError):
            store.read("r", -1)

    def test_not_found(self, store: ObjectStore) -> None:
        for call in (store.stat, store.read, store.open):
            with pytest.raises(ObjectNotFound):
                call("missing/key")
        with pytest.raises(ObjectNotFound):
            store.read("missing/key", 0, 0)
        assert not store.exists("missing/key")

    # -- delete and exists -------------------------------------------------------------------------

    def test_delete(self, store: ObjectStore) -> None:
        store.put("d/e", b"x")
        assert store.exists("d/e")
        store.delete("d/e")
        assert not store.exists("d/e")
        with pytest.raises(ObjectNotFound):
            store.stat("d/e")
        store.delete("d/e")  # deleting twice is fine

    # -- limits and failures -----------------------------------------------------------------------

    def test_too_large_stores_nothing(self, store: ObjectStore) -> None:
        store.put("big", b"small")
        with pytest.raises(ObjectTooLarge) as caught:
            store.put("big", [b"12345", b"678901"], size_limit=10)
        assert caught.value.size_limit == 10
        assert store.read("big") == b"small"
        with pytest.raises(ObjectTooLarge):
            store.put("other", b"x" * 11, size_limit=10)
        assert not store.exists("other")
        assert store.put("exact", b"x" * 10, size_limit=10).size == 10

    def test_failure_mid_write_leaves_nothing(self, store: ObjectStore) -> None:
        store.put("previous", b"kept")
        with pytest.raises(ConnectionError):
            store.put("new", Crashing())
        with pytest.raises(ConnectionError):
            store.put("previous", Crashing())
        assert not store.exists("new")
        assert store.read("previous") == b"kept"
        assert store.stat("previous").sha256 == sha256(b"kept")

    @pytest.mark.parametrize("key", INVALID_KEYS)
    def test_invalid_keys_refused(self, store: ObjectStore, key: str) -> None:
        calls = [
            lambda: store.put(key, b"x"),
            lambda: store.open(key),
            lambda: store.read(key),
            lambda: store.stat(key),
            lambda: store.exists(key),
            lambda: store.delete(key),
            lambda: store.signed_url(key),
        ]
        for call in calls:
            with pytest.raises(InvalidKey) as caught:
                call()
            assert isinstance(caught.value, SuspiciousOperation)

    def test_non_string_key_refused(self, store: ObjectStore) -> None:
        with pytest.raises(InvalidKey):
            store.put(b"bytes", b"x")  # type: ignore[arg-type]

    # -- streaming ---------------------------------------------------------------------------------

    def test_large_object_streams_in_chunks(self, store: ObjectStore) -> None:
        source = Generated(20 * MiB)
        tracemalloc.start()
        try:
            info = store.put("large/blob", source)
            _, put_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            digest, size, biggest = hashlib.sha256(), 0, 0
            with store.open("large/blob") as chunks:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    biggest = max(biggest, len(chunk))
            _, get_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (info.size, info.sha256) == (20 * MiB, source.hash.hexdigest())
        assert (size, digest.hexdigest()) == (info.size, info.sha256)
        assert biggest <= store.chunk_size
        assert store.stat("large/blob").sha256 == info.sha256
        if self.streaming_peak is not None:
            assert put_peak < self.streaming_peak, f"put held {put_peak / MiB:.1f} MiB"
            assert get_peak < self.streaming_peak, f"open held {get_peak / MiB:.1f} MiB"

    def test_large_range_read(self, store: ObjectStore) -> None:
        source = Generated(3 * MiB + 17)
        store.put("large/range", source)
        whole = b"".join(Generated(3 * MiB + 17))
        start, end = MiB - 5, 2 * MiB + 11
        assert store.read("large/range", start, end) == whole[start:end]

    # -- signed URLs -------------------------------------------------------------------------------

    def test_signed_get(self, store: ObjectStore) -> None:
        store.put("signed/get me.bin", b"through a URL")
        assert self.fetch(store.signed_url("signed/get me.bin", "GET", expires_s=60)) == (200, b"through a URL")

    def test_signed_put_then_stat(self, store: ObjectStore) -> None:
        data = b"uploaded through a URL" * 50
        url = store.signed_url("signed/put.bin", "put", expires_s=60)
        assert self.upload(url, data) == 200
        info = store.stat("signed/put.bin")
        assert (info.size, info.sha256) == (len(data), sha256(data))
        assert store.read("signed/put.bin") == data

    def test_signed_put_url_is_write_once(self, store: ObjectStore) -> None:
        """A second PUT to a write-once URL is refused and the first object stays, digest and all."""
        url = store.signed_url("signed/once.bin", "PUT", expires_s=60)
        assert self.upload(url, b"first") == 200
        assert self.upload(url, b"second, to overwrite") == self.exists_status
        assert store.read("signed/once.bin") == b"first"
        assert store.stat("signed/once.bin").sha256 == sha256(b"first")

    def test_write_once_url_refuses_an_object_put_there_otherwise(self, store: ObjectStore) -> None:
        store.put("signed/taken", b"there first")
        assert self.upload(store.signed_url("signed/taken", "PUT", expires_s=60), b"late") == self.exists_status
        assert store.read("signed/taken") == b"there first"

    def test_an_overwrite_url_may_write_again(self, store: ObjectStore) -> None:
        url = store.signed_url("signed/again", "PUT", expires_s=60, overwrite=True)
        assert self.upload(url, b"one", headers={}) == 200
        assert self.upload(url, b"two", headers={}) == 200
        assert store.read("signed/again") == b"two"
        assert store.stat("signed/again").sha256 == sha256(b"two")

    def test_write_once_put(self, store: ObjectStore) -> None:
        """``put(overwrite=False)`` stores where nothing is, and otherwise raises, changing nothing."""
        assert store.put("once/k", b"v1", overwrite=False).sha256 == sha256(b"v1")
        with pytest.raises(ObjectExists, match="written already"):
            store.put("once/k", b"v2", overwrite=False)
        assert store.read("once/k") == b"v1"
        store.delete("once/k")
        assert store.put("once/k", b"v3", overwrite=False).size == 2

    async def test_async_write_once_put(self, store: ObjectStore) -> None:
        await store.aput("once/async", b"v1", overwrite=False)
        with pytest.raises(ObjectExists):
            await store.aput("once/async", b"v2", overwrite=False)
        assert await store.aread("once/async") == b"v1"

    def test_signed_url_arguments_checked(self, store: ObjectStore) -> None:
        with pytest.raises(ValueError):
            store.signed_url("k", "DELETE")
        with pytest.raises(ValueError):
            store.signed_url("k", "GET", expires_s=0)
        with pytest.raises(ValueError):
            store.signed_url("k", "GET", expires_s=8 * 24 * 3600)

    # -- async twins -------------------------------------------------------------------------------

    async def test_async_twins(self, store: ObjectStore) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for part in (b"async ", b"chunks ", b"arrive"):
                yield part

        info = await store.aput("async/k", chunks())
        assert (info.size, info.sha256) == (len(b"async chunks arrive"), sha256(b"async chunks arrive"))
        assert (await store.astat("async/k")).sha256 == info.sha256
        assert await store.aread("async/k", 6, 12) == b"chunks"
        async with await store.aopen("async/k", 0, 5) as reader:
            assert b"".join([chunk async for chunk in reader]) == b"async"
        assert await (await store.aopen("async/k")).aread() == b"async chunks arrive"
        assert await store.aexists("async/k")
        assert "async/k" in (await store.asigned_url("async/k")).replace("%2F", "/")
        await store.adelete("async/k")
        assert not await store.aexists("async/k")
        with pytest.raises(ObjectNotFound):
            await store.aopen("async/k")

    async def test_async_put_failure_and_limit(self, store: ObjectStore) -> None:
        async def failing() -> AsyncIterator[bytes]:
            yield b"part"
            raise ConnectionError("gone")

        with pytest.raises(ConnectionError):
            await store.aput("async/fail", failing())
        with pytest.raises(ObjectTooLarge):
            await store.aput("async/fail", b"x" * 20, size_limit=5)
        assert not await store.aexists("async/fail")
        with pytest.raises(InvalidKey):
            await store.aput("../escape", b"x")


@pytest.mark.urls("tests.facilitator.storage.urls")
class ServedByFacilitator(StoreContract):
    """Stores whose signed URLs the facilitator serves itself, followed with Django's test client."""

    def fetch(self, url: str) -> tuple[int, bytes]:
        response = Client().get(url)
        return response.status_code, b"".join(response.streaming_content) if response.streaming else response.content

    def upload(self, url: str, data: bytes, headers: dict[str, str] = WRITE_ONCE_HEADERS) -> int:
        return Client().put(url, data, content_type="application/octet-stream", headers=headers).status_code

    def test_adding_overwrite_to_a_write_once_url_voids_it(self, store: ObjectStore) -> None:
        url = store.signed_url("signed/tamper", "PUT", expires_s=60)
        assert self.upload(url + "&overwrite=1", b"x") == 403
        assert not store.exists("signed/tamper")


class TestMemoryStore(ServedByFacilitator):
    backend = "memory"
    streaming_peak = None

    @pytest.fixture
    def options(self) -> dict[str, Any]:
        return {}


class TestLocalStore(ServedByFacilitator):
    backend = "local"

    @pytest.fixture
    def options(self, tmp_path: Path) -> dict[str, Any]:
        return {"root": str(tmp_path / "objects")}


class TestS3Store(StoreContract):
    backend = "s3"
    exists_status = 412  # Precondition Failed: If-None-Match: * met an object

    @pytest.fixture
    def options(self, s3_options: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
        return {**s3_options, "spool_dir": str(tmp_path)}

    def fetch(self, url: str) -> tuple[int, bytes]:
        response = httpx.get(url)
        return response.status_code, response.content

    def upload(self, url: str, data: bytes, headers: dict[str, str] = WRITE_ONCE_HEADERS) -> int:
        return httpx.put(url, content=data, headers=headers).status_code

    def test_digest_recorded_after_presigned_put(self, store: Any, s3_admin: Any) -> None:
        """An object uploaded without the metadata is hashed once, then carries its sha256."""
        assert self.upload(store.signed_url("via/url", "PUT"), b"abc") == 200
        assert "sha256" not in s3_admin.head_object(Bucket=store.bucket, Key="via/url")["Metadata"]
        assert store.stat("via/url").sha256 == sha256(b"abc")
        assert s3_admin.head_object(Bucket=store.bucket, Key="via/url")["Metadata"]["sha256"] == sha256(b"abc")

    def test_prefix(self, options: dict[str, Any], s3_admin: Any) -> None:
        with override_settings(GRID_STORAGES={"s3": {"BACKEND": "s3", "OPTIONS": {**options, "prefix": "/grid/"}}}):
            store = get_store("s3")
            store.put("k", b"v")
            head = s3_admin.head_object(Bucket=options["bucket"], Key="grid/k")
            assert head["Metadata"]["sha256"] == sha256(b"v")
            assert store.read("k") == b"v"

    def test_write_once_put_of_a_multipart_object(self, store: Any) -> None:
        """Objects over one part go up as a conditional multipart upload, refused the second time."""
        data = b"".join(Generated(8 * MiB + 1))
        assert store.put("once/large", data, overwrite=False).sha256 == sha256(data)
        with pytest.raises(ObjectExists):
            store.put("once/large", b"small", overwrite=False)
        assert store.stat("once/large").size == len(data)
        assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
