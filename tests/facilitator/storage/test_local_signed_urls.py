"""The local store's signed URLs as the facilitator serves them, and its files on disk."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.http import HttpResponse
from django.test import Client, override_settings

from facilitator.storage import KeyConflict, ObjectNotFound, get_store
from facilitator.storage.local import LocalObjectStore
from tests.facilitator.conftest import assert_error

pytestmark = pytest.mark.urls("tests.facilitator.storage.urls")

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "objects"


@pytest.fixture
def store(root: Path) -> Iterator[LocalObjectStore]:
    options = {"root": str(root), "secret": "test-secret", "max_size": 64 * 1024, "chunk_size": 4096}
    with override_settings(GRID_STORAGES={"default": {"BACKEND": "local", "OPTIONS": options}}):
        store = get_store()
        assert isinstance(store, LocalObjectStore)
        yield store


@pytest.fixture
def http() -> Client:
    return Client()


def body(response: HttpResponse) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def leftovers(root: Path) -> list[str]:
    return sorted(os.listdir(root / "tmp"))


# -- GET -------------------------------------------------------------------------------------------


def test_get_whole_object(store: LocalObjectStore, http: Client) -> None:
    info = store.put("jobs/7/stdout", DATA)
    response = http.get(store.signed_url("jobs/7/stdout"))
    assert response.status_code == 200
    assert response.streaming  # streamed, never built whole
    assert body(response) == DATA
    assert response["Content-Length"] == str(len(DATA))
    assert response["Accept-Ranges"] == "bytes"
    assert response["ETag"] == f'"{info.sha256}"'
    assert response["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=0-99", 0, 100),
        ("bytes=5000-", 5000, 10240),
        ("bytes=-300", 9940, 10240),
        ("bytes=-99999", 0, 10240),
        ("bytes=10000-99999", 10000, 10240),
        ("bytes=10239-10239", 10239, 10240),
    ],
)
def test_get_range(store: LocalObjectStore, http: Client, header: str, start: int, end: int) -> None:
    store.put("r", DATA)
    response = http.get(store.signed_url("r"), headers={"Range": header})
    assert response.status_code == 206
    assert body(response) == DATA[start:end]
    assert response["Content-Range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert response["Content-Length"] == str(end - start)


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=20000-30000", "bytes=-0"])
def test_unsatisfiable_range(store: LocalObjectStore, http: Client, header: str) -> None:
    store.put("r", DATA)
    response = http.get(store.signed_url("r"), headers={"Range": header})
    assert_error(response, 416, "range_not_satisfiable")
    assert response["Content-Range"] == f"bytes */{len(DATA)}"


def test_any_range_of_an_empty_object_is_unsatisfiable(store: LocalObjectStore, http: Client) -> None:
    store.put("empty", b"")
    assert http.get(store.signed_url("empty"), headers={"Range": "bytes=0-"}).status_code == 416
    assert body(http.get(store.signed_url("empty"))) == b""


@pytest.mark.parametrize("header", ["bytes=5-2", "bytes=0-1,4-5", "items=0-1", "bytes=-", "bytes=a-b"])
def test_unusable_range_headers_are_ignored(store: LocalObjectStore, http: Client, header: str) -> None:
    store.put("r", DATA)
    response = http.get(store.signed_url("r"), headers={"Range": header})
    assert response.status_code == 200
    assert body(response) == DATA


def test_head(store: LocalObjectStore, http: Client) -> None:
    store.put("h", DATA)
    response = http.head(store.signed_url("h"))
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(DATA))
    assert response.content == b""


def test_missing_object_is_404(store: LocalObjectStore, http: Client) -> None:
    assert_error(http.get(store.signed_url("never/written")), 404, "not_found")


# -- PUT -------------------------------------------------------------------------------------------


def test_put_streams_body_into_store(store: LocalObjectStore, http: Client, root: Path) -> None:
    url = store.signed_url("uploads/a.bin", "PUT", expires_s=60)
    response = http.put(url, DATA, content_type="application/octet-stream")
    assert response.status_code == 200, response.content
    expected = {"key": "uploads/a.bin", "size": len(DATA), "sha256": hashlib.sha256(DATA).hexdigest()}
    assert response.json() == expected
    info = store.stat("uploads/a.bin")
    assert (info.size, info.sha256) == (expected["size"], expected["sha256"])
    assert (root / "data" / "uploads" / "a.bin").read_bytes() == DATA
    assert json.loads((root / "meta" / "uploads" / "a.bin").read_bytes())["sha256"] == expected["sha256"]
    assert leftovers(root) == []


def test_put_over_the_size_limit_is_413(store: LocalObjectStore, http: Client, root: Path) -> None:
    url = store.signed_url("too/big", "PUT")
    response = http.put(url, b"x" * (64 * 1024 + 1), content_type="application/octet-stream")
    assert_error(response, 413, "object_too_large")
    assert not store.exists("too/big")
    assert leftovers(root) == []


def test_put_body_larger_than_declared_limit_still_refused(store: LocalObjectStore, root: Path) -> None:
    """The limit holds while streaming too, whatever Content-Length said."""
    from facilitator.storage import ObjectTooLarge

    chunks = (b"y" * 4096 for _ in range(17))
    with pytest.raises(ObjectTooLarge):
        store.put("streamed/too/big", chunks)
    assert not store.exists("streamed/too/big")
    assert leftovers(root) == []


# -- signatures ------------------------------------------------------------------------------------


def test_expired_url_is_403(store: LocalObjectStore, http: Client) -> None:
    store.put("old", DATA)
    url = store.url_signer.url("GET", "old", int(time.time()) - 1)
    assert_error(http.get(url), 403, "url_expired")


def test_url_valid_until_it_expires(store: LocalObjectStore, http: Client) -> None:
    store.put("soon", DATA)
    url = store.url_signer.url("GET", "soon", int(time.time()) + 5)
    response = http.get(url)
    assert response.status_code == 200
    assert body(response) == DATA


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda url: url.replace("signature=", "signature=0"), id="signature"),
        pytest.param(lambda url: url[:-1] + ("0" if url[-1] != "0" else "1"), id="signature-digit"),
        pytest.param(lambda url: url.replace("/objects/secret", "/objects/secreT"), id="key"),
        pytest.param(lambda url: url.replace("expires=", "expires=9"), id="expires"),
        pytest.param(lambda url: url.split("&signature=")[0], id="no-signature"),
        pytest.param(lambda url: url.split("?")[0], id="unsigned"),
        pytest.param(lambda url: url.replace("expires=", "expires=²"), id="non-ascii-expires"),
    ],
)
def test_tampered_url_is_403(store: LocalObjectStore, http: Client, tamper: Any) -> None:
    store.put("secret", DATA)
    store.put("secreT", DATA)
    assert_error(http.get(tamper(store.signed_url("secret"))), 403, "bad_signature")


def test_url_signed_for_get_does_not_allow_put(store: LocalObjectStore, http: Client) -> None:
    store.put("ro", DATA)
    response = http.put(store.signed_url("ro", "GET"), b"overwritten", content_type="application/octet-stream")
    assert_error(response, 403, "bad_signature")
    assert store.read("ro") == DATA
    assert_error(http.get(store.signed_url("ro", "PUT")), 403, "bad_signature")


def test_other_secret_is_403(store: LocalObjectStore, http: Client, root: Path) -> None:
    store.put("k", DATA)
    forged = LocalObjectStore(root=root, secret="another secret").signed_url("k")
    assert_error(http.get(forged), 403, "bad_signature")


def test_signed_traversal_key_is_refused(store: LocalObjectStore, http: Client) -> None:
    """Even a correctly signed key is validated before touching the disk."""
    key = "a/../../../etc/passwd"
    expires = int(time.time()) + 60
    url = f"/objects/{key}?expires={expires}&signature={store.url_signer.signature('GET', key, expires)}"
    assert_error(http.get(url), 400, "invalid_key")


def test_other_methods_are_405(store: LocalObjectStore, http: Client) -> None:
    response = http.delete(store.signed_url("k"))
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET, HEAD, PUT"


def test_signed_url_shape(store: LocalObjectStore) -> None:
    url = store.signed_url("dir/ä b.txt", "GET", expires_s=120)
    assert url.startswith("/objects/dir/%C3%A4%20b.txt?")
    params = query(url)
    assert abs(int(params["expires"]) - (time.time() + 120)) < 5
    assert len(params["signature"]) == 64


# -- on disk ---------------------------------------------------------------------------------------


class Crashing:
    def __iter__(self) -> Iterator[bytes]:
        yield b"a" * 5000
        yield b"b" * 5000
        raise RuntimeError("crash halfway")


def test_crash_mid_write_leaves_no_object_and_no_temp_file(store: LocalObjectStore, root: Path) -> None:
    with pytest.raises(RuntimeError):
        store.put("crash/new", Crashing())
    assert not store.exists("crash/new")
    assert not (root / "data" / "crash" / "new").exists()
    assert not (root / "meta" / "crash" / "new").exists()
    assert leftovers(root) == []


def test_crash_mid_overwrite_keeps_previous_version(store: LocalObjectStore, root: Path) -> None:
    before = store.put("crash/old", DATA)
    with pytest.raises(RuntimeError):
        store.put("crash/old", Crashing())
    assert store.read("crash/old") == DATA
    assert store.stat("crash/old") == before
    assert leftovers(root) == []


def test_crash_through_the_view_leaves_nothing(store: LocalObjectStore, root: Path) -> None:
    """A PUT whose body breaks off: the request fails, no object, no temp file."""
    from django.test import RequestFactory

    from facilitator.storage.views import object_view

    url = store.signed_url("crash/view", "PUT")
    request = RequestFactory().put(url, b"", content_type="application/octet-stream")

    def broken_read(size: int = -1) -> bytes:
        raise OSError("connection reset")

    request.read = broken_read  # type: ignore[method-assign]
    with pytest.raises(OSError):
        object_view(request, "crash/view")
    assert not store.exists("crash/view")
    assert leftovers(root) == []


def test_file_dropped_in_by_hand_gets_its_digest(store: LocalObjectStore, root: Path) -> None:
    """Import without copy: a file placed under data/ is an object; stat hashes it once."""
    path = root / "data" / "imported" / "file.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(DATA)
    info = store.stat("imported/file.bin")
    assert (info.size, info.sha256) == (len(DATA), hashlib.sha256(DATA).hexdigest())
    assert (root / "meta" / "imported" / "file.bin").exists()
    assert store.stat("imported/file.bin") == info


def test_stale_sidecar_is_rebuilt(store: LocalObjectStore, root: Path) -> None:
    """A crash between moving the data and its sidecar leaves an old sidecar: never trusted."""
    store.put("k", b"old")
    new = root / "tmp" / "replacement"
    new.write_bytes(b"new data")
    os.replace(new, root / "data" / "k")  # the data moved, the sidecar did not
    assert store.stat("k").sha256 == hashlib.sha256(b"new data").hexdigest()


def test_key_and_folder_clash_then_clear(store: LocalObjectStore, root: Path) -> None:
    store.put("a/b", b"inner")
    with pytest.raises(KeyConflict):
        store.put("a", b"outer")
    with pytest.raises(ObjectNotFound):
        store.stat("a")
    store.delete("a/b")
    assert not (root / "data" / "a").exists()  # emptied folders go
    store.put("a", b"outer")
    with pytest.raises(KeyConflict):
        store.put("a/b", b"inner")
    assert store.read("a") == b"outer"
    assert leftovers(root) == []


def test_default_root_is_under_grid_home(settings: Any, tmp_path: Path) -> None:
    settings.GRID_HOME = tmp_path / "home"
    with override_settings(GRID_STORAGES={"default": {"BACKEND": "local"}}):
        assert get_store().root == (tmp_path / "home" / "objects").resolve()


async def test_get_under_asgi_streams_an_async_iterator(store: LocalObjectStore) -> None:
    """Django would read a sync iterator whole before serving it under ASGI."""
    from django.test import AsyncClient

    await store.aput("asgi/k", DATA)
    response = await AsyncClient().get(store.signed_url("asgi/k"), headers={"Range": "bytes=100-"})
    assert response.status_code == 206
    assert response.is_async
    assert b"".join([chunk async for chunk in response.streaming_content]) == DATA[100:]


async def test_put_under_asgi(store: LocalObjectStore) -> None:
    from django.test import AsyncClient

    url = store.signed_url("asgi/up", "PUT")
    response = await AsyncClient().put(url, DATA, content_type="application/octet-stream")
    assert response.status_code == 200
    assert response.json()["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert await store.aread("asgi/up") == DATA
