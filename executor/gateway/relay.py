"""The websocket relay of the job gateway: client ↔ job, every message in the sealed transcript.

See :mod:`executor.gateway` for how a session ends and what its seal says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from yarl import URL

from executor.gateway.forward import _describe, _forward_headers
from protocol.keys import Keypair
from protocol.streaming import (
    HEADER_REQUEST_DIGEST,
    WS_DATA_PREFIX,
    WS_END,
    WS_SEAL_PREFIX,
    ReplySeal,
    Transcript,
    sign_reply,
)

logger = logging.getLogger("executor.gateway")

CLOSE_HANDSHAKE_S = 1.0  # how long a websocket close waits for the peer's answer (ms on a sane link)


def _sendable_close_code(code: int | None, fallback: int) -> int:
    if code is not None and (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        return code
    return fallback


# -- websocket sessions ----------------------------------------------------------------------------


class _WsSession:
    """One relayed websocket: how it ended decides the seal."""

    def __init__(self) -> None:
        self.transcript = Transcript()
        self.lock = asyncio.Lock()  # held while a job message is recorded and relayed, and to seal
        self.done = asyncio.Event()
        self.outcome: str | None = None  # end | job_closed | job_failed | client_closed | stopped
        self.error: str | None = None
        self.job_close_code: int | None = None
        self.closed = asyncio.Event()  # the handler is done with both websockets

    def finish(self, outcome: str, error: str | None = None, job_close_code: int | None = None) -> None:
        if self.outcome is None:
            self.outcome, self.error, self.job_close_code = outcome, error, job_close_code
            self.done.set()


class Relay:
    """The :class:`~executor.gateway.JobGateway`'s websocket relay (a mixin)."""

    job_id: str
    job_keypair: Keypair
    max_message_bytes: int
    _session: aiohttp.ClientSession | None
    _upstream: URL
    _websockets: set[_WsSession]

    if TYPE_CHECKING:

        def _signed_error(self, status: int, code: str, message: str, digest: str) -> web.Response: ...  # Forwarding's

    async def _websocket(self, request: web.BaseRequest, target: str, digest: str) -> web.StreamResponse:
        assert self._session is not None
        client_ws = web.WebSocketResponse(max_msg_size=self.max_message_bytes, timeout=5.0)
        if not client_ws.can_prepare(request).ok:
            return self._signed_error(400, "bad_websocket", "not a valid websocket upgrade", digest)
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            job_ws = await self._session.ws_connect(
                URL(f"{self._upstream}{target}", encoded=True),
                headers=_forward_headers(request.headers, websocket=True),
                protocols=protocols,
                max_msg_size=self.max_message_bytes,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_HANDSHAKE_S),
            )
        except aiohttp.WSServerHandshakeError as exc:
            message = f"the job refused the websocket ({exc.status})"
            return self._signed_error(502, "job_refused_websocket", message, digest)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.warning("job %s: unreachable: %s", self.job_id, _describe(exc))
            return self._signed_error(502, "job_unreachable", f"the job did not answer: {_describe(exc)}", digest)
        session = _WsSession()
        self._websockets.add(session)
        try:
            client_ws = web.WebSocketResponse(
                max_msg_size=self.max_message_bytes,
                timeout=CLOSE_HANDSHAKE_S,
                protocols=(job_ws.protocol,) if job_ws.protocol else (),
            )
            client_ws.headers[HEADER_REQUEST_DIGEST] = digest
            await client_ws.prepare(request)
            await self._relay(session, client_ws, job_ws, digest)
            return client_ws
        finally:
            if not job_ws.closed:
                with contextlib.suppress(Exception):
                    await job_ws.close()
            self._websockets.discard(session)
            session.closed.set()

    async def _relay(
        self,
        session: _WsSession,
        client_ws: web.WebSocketResponse,
        job_ws: aiohttp.ClientWebSocketResponse,
        digest: str,
    ) -> None:
        pumps = [
            asyncio.create_task(self._client_to_job(session, client_ws, job_ws)),
            asyncio.create_task(self._job_to_client(session, client_ws, job_ws)),
        ]
        try:
            await session.done.wait()
            if session.outcome == "client_closed":
                return  # nothing can be sent after the client's close frame
            seal: ReplySeal | None = None
            try:
                async with asyncio.timeout(5.0):
                    async with session.lock:  # a job message being relayed finishes first, and is sealed
                        complete = session.outcome in ("end", "job_closed")
                        seal = sign_reply(
                            self.job_keypair,
                            self.job_id,
                            digest,
                            101,
                            session.transcript.hexdigest(),
                            complete=complete,
                            error=None if complete else session.error,
                        )
                        await client_ws.send_str(WS_SEAL_PREFIX + seal.to_json().decode())
            except (ConnectionError, RuntimeError, TimeoutError) as exc:
                logger.info("job %s: could not send the websocket seal: %s", self.job_id, _describe(exc))
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            if session.outcome == "job_closed":
                code = _sendable_close_code(session.job_close_code, 1000)
            else:
                code = {"end": 1000, "stopped": 1001}.get(session.outcome or "", 1011)
            with contextlib.suppress(Exception):
                await client_ws.close(code=code)
            with contextlib.suppress(Exception):
                await job_ws.close(code=1000 if session.outcome in ("end", "client_closed") else 1001)

    async def _client_to_job(
        self, session: _WsSession, client_ws: web.WebSocketResponse, job_ws: aiohttp.ClientWebSocketResponse
    ) -> None:
        try:
            while True:
                msg = await client_ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    if msg.data == WS_END:
                        session.finish("end")
                        return
                    session.transcript.add("client", msg.data)
                    await job_ws.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    session.transcript.add("client", msg.data)
                    await job_ws.send_bytes(msg.data)
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    session.finish("client_closed")
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if client_ws.closed:
                session.finish("client_closed")
            session.finish("job_failed", f"relaying to the job failed: {_describe(exc)}")
        finally:
            session.finish("job_failed", "the relay stopped")  # no-op unless nothing else ended it

    async def _job_to_client(
        self, session: _WsSession, client_ws: web.WebSocketResponse, job_ws: aiohttp.ClientWebSocketResponse
    ) -> None:
        try:
            while True:
                msg = await job_ws.receive()
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    async with session.lock:
                        if session.outcome is not None:
                            return
                        session.transcript.add("job", msg.data)
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await client_ws.send_str(WS_DATA_PREFIX + msg.data)
                        else:
                            await client_ws.send_bytes(WS_DATA_PREFIX.encode() + msg.data)
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    session.finish("job_closed", job_close_code=job_ws.close_code)
                    return
                else:  # CLOSED or ERROR: the connection broke
                    error = job_ws.exception() or msg.data
                    session.finish("job_failed", f"the job's websocket broke: {error or 'connection lost'}"[:300])
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if client_ws.closed:
                session.finish("client_closed")
            session.finish("job_failed", f"relaying to the client failed: {_describe(exc)}")
        finally:
            session.finish("job_failed", "the relay stopped")  # no-op unless nothing else ended it
