"""Request authentication at the job gateway: header pre-checks, the spooled body, refusals.

Every request must carry the headers of :func:`protocol.requests.sign_request` made with the
client's streaming key and :data:`~protocol.streaming.REQUEST_PURPOSE`. :func:`check_headers`
refuses what it can before the body is read (presence, key, nonce format, freshness, replay:
:mod:`protocol.requests`' own checks), so unsigned floods cost nothing; the body is then
spooled (:class:`_Spool`) while hashed, and :func:`protocol.requests.verify_request` checks the
signature over its digest. Refusals are unsigned (:func:`_refusal`): nothing was verified.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator, Mapping
from typing import IO

import aiohttp
from aiohttp import web

from protocol.errors import ReplayedRequest, RequestAuthError
from protocol.requests import (
    NonceStore,
    check_fresh,
    check_nonce,
    signature_headers,
)

MEMORY_SPOOL_BYTES = 1024 * 1024
READ_CHUNK = 256 * 1024


class _Refused(Exception):
    """A request the gateway answers itself, unsigned (it was never verified)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def check_headers(headers: Mapping[str, str], now: float, client_streaming_key: str, nonces: NonceStore) -> None:
    """What can be refused before reading the body (``verify_request`` checks it all again).

    Raises:
        RequestAuthError: ``missing_signature``, ``wrong_key``, ``bad_nonce``, ``stale_request``
            or ``replayed`` (:class:`~protocol.errors.ReplayedRequest`).
    """
    hotkey, timestamp, nonce, _ = signature_headers(headers)
    if hotkey.lower() != client_streaming_key:
        raise RequestAuthError("not signed by this job's client streaming key", code="wrong_key")
    check_nonce(nonce)
    check_fresh(timestamp, now)
    if nonces.seen(nonce):
        raise ReplayedRequest()


# -- request bodies --------------------------------------------------------------------------------


class _Spool:
    """A request body: in memory up to ``MEMORY_SPOOL_BYTES``, then in a temporary file."""

    def __init__(self, directory: str | None) -> None:
        self._directory = directory
        self._chunks: list[bytes] = []
        self._file: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self.size = 0

    async def fill(self, stream: aiohttp.StreamReader, limit: int) -> None:
        while chunk := await stream.read(READ_CHUNK):
            self.size += len(chunk)
            if self.size > limit:
                raise _Refused(413, "request_too_large", f"the request body is over {limit} bytes")
            self._hash.update(chunk)
            if self._file is None and self.size <= MEMORY_SPOOL_BYTES:
                self._chunks.append(chunk)
                continue
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self._directory, prefix="grid-gateway-")  # noqa: SIM115
                pending, self._chunks = self._chunks, []
                await asyncio.to_thread(self._file.writelines, pending)
            await asyncio.to_thread(self._file.write, chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def payload(self) -> bytes | AsyncIterator[bytes]:
        if self._file is None:
            return b"".join(self._chunks)
        return self._read_file(self._file)

    @staticmethod
    async def _read_file(fh: IO[bytes]) -> AsyncIterator[bytes]:
        await asyncio.to_thread(fh.seek, 0)
        while chunk := await asyncio.to_thread(fh.read, READ_CHUNK):
            yield chunk

    def close(self) -> None:
        self._chunks = []
        if self._file is not None:
            self._file.close()
            self._file = None


def _refusal(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)
