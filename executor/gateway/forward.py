"""Forwarding to the job and sealing its replies, at the job gateway.

Same method, raw path, raw query and body to ``http://127.0.0.1:<upstream>``, minus hop-by-hop
headers, ``Host`` and every ``X-Grid-*`` header; the reply signed with the job key, buffered or
streamed in frames (see :mod:`executor.gateway`). Paths under ``/_grid/`` are the gateway's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from executor.gateway.auth import _Spool
from protocol.keys import Keypair
from protocol.requests import (
    SignedRequest,
)
from protocol.streaming import (
    FRAME_DATA,
    FRAME_END,
    FRAMING,
    HEADER_CONTENT_ENCODING,
    HEADER_FRAMING,
    HEADER_REPLY_DIGEST,
    HEADER_REPLY_SIGNATURE,
    HEADER_REQUEST_DIGEST,
    TERMINATE_PATH,
    encode_frame,
    sign_reply,
)

logger = logging.getLogger("executor.gateway")

GRID_PREFIX = "/_grid/"
REPLY_CHUNK = 1024 * 1024  # at most this many bytes per DATA frame (well under MAX_FRAME_BYTES)
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED = frozenset({"host", "content-length", "expect"})
_WS_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
)
_REPLY_NOT_COPIED = frozenset({"content-length"})


# -- headers ---------------------------------------------------------------------------------------


def _connection_tokens(headers: CIMultiDictProxy[str]) -> set[str]:
    """Header names listed in ``Connection`` (hop-by-hop too, RFC 9110 §7.6.1)."""
    tokens: set[str] = set()
    for value in headers.getall("Connection", []):
        tokens.update(token.strip().lower() for token in value.split(",") if token.strip())
    return tokens


def _forward_headers(headers: CIMultiDictProxy[str], *, websocket: bool = False) -> CIMultiDict[str]:
    """The client's headers as the job gets them."""
    drop = _HOP_BY_HOP | _NOT_FORWARDED | _connection_tokens(headers) | (_WS_HANDSHAKE if websocket else set())
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lower = name.lower()
        if lower in drop or lower.startswith("x-grid-"):
            continue
        out.add(name, value)
    return out


def _reply_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The job's reply headers as the client gets them (the gateway adds its own ``X-Grid-*``)."""
    drop = _HOP_BY_HOP | _REPLY_NOT_COPIED | _connection_tokens(headers)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lower = name.lower()
        if lower in drop or lower.startswith("x-grid-"):
            continue
        out.add(name, value)
    return out


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"[:300]


class _Stopped(Exception):
    """Raised into a streamed reply's pending read when the gateway stops."""


class _Stream:
    """A streamed reply in flight: :meth:`stop` breaks its read off, ``done`` is set once it ended."""

    def __init__(self, upstream: aiohttp.ClientResponse) -> None:
        self.upstream = upstream
        self.done = asyncio.Event()

    def stop(self) -> None:
        self.upstream.content.set_exception(_Stopped())


class Forwarding:
    """The :class:`~executor.gateway.JobGateway`'s forwarding and reply sealing (a mixin)."""

    job_id: str
    job_keypair: Keypair
    buffer_limit: int
    terminated: asyncio.Event
    _session: aiohttp.ClientSession | None
    _upstream: URL
    _streams: set[_Stream]

    def _signed(
        self,
        status: int,
        body: bytes,
        digest: str,
        headers: CIMultiDict[str] | None = None,
        *,
        content_type: str | None = "application/json",
    ) -> web.Response:
        """A buffered reply, sealed."""
        seal = sign_reply(self.job_keypair, self.job_id, digest, status, hashlib.sha256(body).hexdigest())
        out: CIMultiDict[str] = headers if headers is not None else CIMultiDict()
        if content_type is not None and "Content-Type" not in out:
            out["Content-Type"] = content_type
        out[HEADER_REQUEST_DIGEST] = digest
        out[HEADER_REPLY_DIGEST] = seal.reply_digest
        out[HEADER_REPLY_SIGNATURE] = seal.signature
        return web.Response(status=status, body=body, headers=out)

    def _signed_error(self, status: int, code: str, message: str, digest: str) -> web.Response:
        return self._signed(status, json.dumps({"code": code, "message": message}).encode(), digest)

    async def _own(self, request: web.BaseRequest, path: str, digest: str) -> web.StreamResponse:
        if path != TERMINATE_PATH:
            return self._signed_error(404, "not_found", f"no gateway endpoint {path[:100]}", digest)
        if request.method != "POST":
            return self._signed_error(405, "method_not_allowed", "terminate with POST", digest)
        logger.info("job %s: the client asked to terminate", self.job_id)
        self.terminated.set()
        return self._signed(202, json.dumps({"status": "terminating"}).encode(), digest)

    async def _forward(
        self, request: web.BaseRequest, target: str, spool: _Spool, signed: SignedRequest, digest: str
    ) -> web.StreamResponse:
        assert self._session is not None
        headers = _forward_headers(request.headers)
        if spool.size or request.content_length is not None or request.method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(spool.size)
        url = URL(f"{self._upstream}{target}", encoded=True)
        try:
            upstream = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=spool.payload() if spool.size else None,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.warning("job %s: unreachable: %s", self.job_id, _describe(exc))
            return self._signed_error(502, "job_unreachable", f"the job did not answer: {_describe(exc)}", digest)
        try:
            if self._buffered(request, upstream):
                try:
                    body = await upstream.read()
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    message = f"the job's reply broke off: {_describe(exc)}"
                    return self._signed_error(502, "job_reply_broken", message, digest)
                return self._signed(upstream.status, body, digest, _reply_headers(upstream.headers), content_type=None)
            return await self._stream(request, upstream, digest)
        finally:
            upstream.release()

    def _buffered(self, request: web.BaseRequest, upstream: aiohttp.ClientResponse) -> bool:
        if request.method == "HEAD" or upstream.status in (204, 304) or upstream.status < 200:
            return True
        length = upstream.content_length
        if length is None or length > self.buffer_limit:
            return False
        return upstream.content_type != "text/event-stream"

    async def _stream(
        self, request: web.BaseRequest, upstream: aiohttp.ClientResponse, digest: str
    ) -> web.StreamResponse:
        headers = _reply_headers(upstream.headers)
        encodings = headers.popall("Content-Encoding", [])
        if encodings:
            headers[HEADER_CONTENT_ENCODING] = ", ".join(encodings)
        headers[HEADER_FRAMING] = FRAMING
        headers[HEADER_REQUEST_DIGEST] = digest
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        hasher = hashlib.sha256()
        error: str | None = None
        stream = _Stream(upstream)
        self._streams.add(stream)
        try:
            while True:
                try:
                    chunk = await upstream.content.read(REPLY_CHUNK)
                except _Stopped:
                    error = "the gateway stopped"
                    break
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    error = f"the job's reply broke off: {_describe(exc)}"
                    logger.warning("job %s: %s", self.job_id, error)
                    break
                if not chunk:
                    break
                hasher.update(chunk)
                try:
                    await response.write(encode_frame(FRAME_DATA, chunk))
                except ConnectionError:
                    logger.info("job %s: the client went away during a streamed reply", self.job_id)
                    upstream.close()
                    return response
            await self._seal_stream(response, upstream.status, digest, hasher.hexdigest(), error)
            return response
        finally:
            self._streams.discard(stream)
            stream.done.set()

    async def _seal_stream(
        self, response: web.StreamResponse, status: int, digest: str, reply_digest: str, error: str | None
    ) -> None:
        seal = sign_reply(
            self.job_keypair, self.job_id, digest, status, reply_digest, complete=error is None, error=error
        )
        with contextlib.suppress(ConnectionError):
            await response.write(encode_frame(FRAME_END, seal.to_json()))
            await response.write_eof()
