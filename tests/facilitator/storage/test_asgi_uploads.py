"""Signed PUTs streamed into the store by the ASGI middleware in front of Django (facilitator/storage/asgi.py).

The middleware is called as the server calls it: an HTTP scope, the request body as a series of
``http.request`` messages, and the messages it sends back collected.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import override_settings

from facilitator.storage import get_store
from facilitator.storage.asgi import StreamingUploads
from facilitator.storage.local import LocalObjectStore

DATA = os.urandom(50_000)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalObjectStore]:
    options = {"root": str(tmp_path / "objects"), "secret": "s", "max_size": 64 * 1024, "chunk_size": 4096}
    with override_settings(GRID_STORAGES={"default": {"BACKEND": "local", "OPTIONS": options}}):
        store = get_store()
        assert isinstance(store, LocalObjectStore)
        yield store


class Inner:
    """The application behind the middleware (Django in production): records what reached it."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})


async def call(
    url: str, body_chunks: list[bytes], *, method: str = "PUT", disconnect: bool = False, length: int | None = None
) -> tuple[int, dict[str, Any] | bytes, Inner]:
    inner = Inner()
    parts = urlsplit(url)
    headers = [(b"content-length", str(length if length is not None else sum(map(len, body_chunks))).encode())]
    scope = {
        "type": "http",
        "method": method,
        "path": parts.path,
        "query_string": parts.query.encode(),
        "headers": headers,
    }
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in body_chunks]
    messages.append(
        {"type": "http.disconnect"} if disconnect else {"type": "http.request", "body": b"", "more_body": False}
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await StreamingUploads(inner)(scope, receive, send)
    if not sent:
        return 0, b"", inner
    payload = b"".join(message.get("body", b"") for message in sent[1:])
    try:
        return sent[0]["status"], json.loads(payload), inner
    except ValueError:
        return sent[0]["status"], payload, inner


def chunks(data: bytes, size: int = 7000) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def test_a_signed_put_streams_into_the_store_and_answers_its_digest(store: LocalObjectStore) -> None:
    status, answer, inner = await call(store.signed_url("a/b.bin", "PUT"), chunks(DATA))
    assert status == 200
    assert answer == {"key": "a/b.bin", "size": len(DATA), "sha256": hashlib.sha256(DATA).hexdigest()}
    assert store.read("a/b.bin") == DATA
    assert inner.scopes == [], "Django never saw the upload"


async def test_a_second_put_of_a_write_once_url_is_409_and_changes_nothing(store: LocalObjectStore) -> None:
    url = store.signed_url("once.bin", "PUT")
    assert (await call(url, chunks(DATA)))[0] == 200
    status, answer, _ = await call(url, [b"overwrite attempt"])
    assert (status, answer["code"]) == (409, "object_exists")
    assert answer["message"] == "this URL is write-once and the object was written already"
    assert store.read("once.bin") == DATA


async def test_an_overwrite_url_replaces_the_object(store: LocalObjectStore) -> None:
    url = store.signed_url("again.bin", "PUT", overwrite=True)
    assert (await call(url, [b"one"]))[0] == 200
    assert (await call(url, [b"two"]))[0] == 200
    assert store.read("again.bin") == b"two"


async def test_a_put_with_a_bad_signature_is_refused_and_stores_nothing(store: LocalObjectStore) -> None:
    url = store.signed_url("a.bin", "PUT").replace("signature=", "signature=0")
    status, answer, _ = await call(url, chunks(DATA))
    assert status == 403 and answer["code"] == "bad_signature"
    assert not store.exists("a.bin")


async def test_a_get_url_cannot_be_used_to_put(store: LocalObjectStore) -> None:
    status, answer, _ = await call(store.signed_url("a.bin", "GET"), chunks(DATA))
    assert status == 403 and answer["code"] == "bad_signature"


async def test_a_body_over_the_stores_limit_is_refused_by_its_declared_length(store: LocalObjectStore) -> None:
    status, answer, _ = await call(store.signed_url("big", "PUT"), [b"x"], length=10**9)
    assert status == 413 and answer["code"] == "object_too_large"


async def test_a_body_over_the_limit_is_refused_while_streaming_and_leaves_no_file(store: LocalObjectStore) -> None:
    status, answer, _ = await call(store.signed_url("big", "PUT"), chunks(b"x" * 100_000), length=10)
    assert status == 413 and answer["code"] == "object_too_large"
    assert not store.exists("big")
    assert os.listdir(store.root / "tmp") == []


async def test_an_uploader_that_disconnects_midway_leaves_nothing(store: LocalObjectStore) -> None:
    store.put("kept", b"the old object")
    status, _, _ = await call(store.signed_url("kept", "PUT"), chunks(DATA)[:2], disconnect=True)
    assert status == 0, "nobody is left to answer"
    assert store.read("kept") == b"the old object"
    assert os.listdir(store.root / "tmp") == []


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/objects/a"), ("PUT", "/api/v1/uploads"), ("POST", "/objects/a")]
)
async def test_everything_else_goes_on_to_the_application(store: LocalObjectStore, method: str, path: str) -> None:
    status, answer, inner = await call(f"http://127.0.0.1{path}", [b"{}"], method=method)
    assert (status, answer) == (299, b"inner")
    assert [scope["path"] for scope in inner.scopes] == [path]
