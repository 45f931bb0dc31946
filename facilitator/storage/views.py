"""Serve signed URLs of the stores that sign their own (local, memory): ``/objects/<key>``.

``GET`` (and ``HEAD``) streams the object, honouring one ``Range: bytes=a-b`` (206 with
``Content-Range``, 416 when unsatisfiable); ``PUT`` streams the request body into the store and
answers ``{"key", "size", "sha256"}``, or 409 ``object_exists`` where a write-once URL finds an
object already written (which stays as it was). Refusals use the API's shape ``{code, message, errors}``.
"""

from __future__ import annotations

import re

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from facilitator.storage.base import ObjectInfo, ObjectStore
from facilitator.storage.errors import (
    InvalidKey,
    KeyConflict,
    ObjectExists,
    ObjectNotFound,
    ObjectTooLarge,
    URLSignatureError,
)
from facilitator.storage.handler import get_store
from facilitator.storage.streams import AsyncObjectReader

__all__ = ["REFUSALS", "object_view", "refusal"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, "errors": []}, status=status)


@csrf_exempt
def object_view(request: HttpRequest, key: str, alias: str = "default") -> HttpResponse:
    if request.method not in ("GET", "HEAD", "PUT"):
        response = error(405, "method_not_allowed", f"{request.method} is not allowed here; allowed: GET, HEAD, PUT")
        response["Allow"] = "GET, HEAD, PUT"
        return response
    store = get_store(alias)
    signer = getattr(store, "url_signer", None)
    if signer is None:
        return error(404, "not_found", "this store hands out its own URLs")
    try:
        signed_method = "GET" if request.method == "HEAD" else request.method
        overwrite = request.method == "PUT" and request.GET.get("overwrite") == "1"
        signer.verify(signed_method, key, request.GET.get("expires"), request.GET.get("signature"), overwrite)
        if request.method == "PUT":
            return _put(request, store, key, overwrite)
        return _get(request, store, store.stat(key))
    except REFUSALS as exc:
        return error(*refusal(exc))


# The store's refusals as (HTTP status, code, message); shared with the streaming ASGI upload path.
REFUSALS = (URLSignatureError, InvalidKey, ObjectNotFound, ObjectTooLarge, ObjectExists, KeyConflict)


def refusal(exc: Exception) -> tuple[int, str, str]:
    if isinstance(exc, URLSignatureError):
        return 403, exc.code, exc.message
    if isinstance(exc, InvalidKey):
        return 400, "invalid_key", str(exc)
    if isinstance(exc, ObjectNotFound):
        return 404, "not_found", "no such object"
    if isinstance(exc, ObjectTooLarge):
        return 413, "object_too_large", f"objects here are limited to {exc.size_limit} bytes"
    if isinstance(exc, ObjectExists):
        return 409, "object_exists", "this URL is write-once and the object was written already"
    return 409, "key_conflict", str(exc)


def _get(request: HttpRequest, store: ObjectStore, info: ObjectInfo) -> HttpResponse:
    # Objects are replaced atomically, so the size read here holds unless the key is rewritten
    # between stat and open; a client then sees a short body and retries.
    span = _parse_range(request.headers.get("Range"), info.size)
    if span == "unsatisfiable":
        response = error(416, "range_not_satisfiable", f"the object has {info.size} bytes")
        response["Content-Range"] = f"bytes */{info.size}"
        return response
    start, end = span or (0, info.size)
    if request.method == "HEAD":
        response = HttpResponse(status=206 if span else 200)
    else:
        reader = store.open(info.key, start, end)
        # Django serves a sync iterator under ASGI (and an async one under WSGI) only after
        # reading it whole into a list: hand each server the kind it streams.
        content = AsyncObjectReader(reader) if isinstance(request, ASGIRequest) else reader
        response = StreamingHttpResponse(content, status=206 if span else 200)
    response["Content-Type"] = "application/octet-stream"
    response["Content-Length"] = str(end - start)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = f'"{info.sha256}"'
    if span:
        response["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
    return response


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """One byte range as ``(start, end)``, end exclusive; ``None`` to send everything.

    Malformed or multi-range headers are ignored, as RFC 9110 §14.2 allows.
    """
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        length = int(last)
        return (max(size - length, 0), size) if length > 0 and size > 0 else "unsatisfiable"
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size:
        return "unsatisfiable"
    if end <= start:  # last < first: invalid, ignored
        return None
    return start, end


def _put(request: HttpRequest, store: ObjectStore, key: str, overwrite: bool) -> HttpResponse:
    declared = request.headers.get("Content-Length", "")
    if store.max_size is not None and declared.isdigit() and int(declared) > store.max_size:
        raise ObjectTooLarge(key, store.max_size)
    info = store.put(key, _body(request, store.chunk_size), overwrite=overwrite)
    return JsonResponse({"key": info.key, "size": info.size, "sha256": info.sha256})


def _body(request: HttpRequest, chunk_size: int):
    while chunk := request.read(chunk_size):
        yield chunk
