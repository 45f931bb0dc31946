"""A local, unsigned gRPC endpoint that signs every call and forwards it to the control plane.

ArmoniK applications open ``grpc.insecure_channel(endpoint)`` themselves; pointed at this proxy
(``grid control-proxy``), they run against Gridmarket unmodified. Each call's request is parsed
with our ArmoniK descriptors (:mod:`protocol.armonik_api`) only to sign it
(:func:`protocol.signed_calls.call_metadata` over its deterministic bytes); the bytes forwarded
are the ones the application sent, and the replies, statuses and details come back untouched.

It listens on loopback only by default: anyone who can reach it calls with the client's key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.protobuf import message_factory

from facilitator_sdk.control import SpooledStream
from protocol.armonik_api.pool import POOL
from protocol.keys import Keypair
from protocol.signed_calls import METADATA_KEYS, call_metadata

__all__ = ["ControlProxy", "run"]

log = logging.getLogger("grid.control_proxy")

_SERVICES = ("sessions", "results", "tasks", "events", "partitions", "versions", "health_checks", "applications")
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def _load_services() -> None:
    import importlib

    for name in _SERVICES:
        importlib.import_module(f"protocol.armonik_api.protos.{name}_pb2")


class _Method:
    """What the proxy needs of one API method: its request type and streaming shape."""

    def __init__(self, path: str) -> None:
        service, _, method = path.lstrip("/").rpartition("/")
        try:
            descriptor = POOL.FindServiceByName(service).methods_by_name[method]
        except KeyError:
            raise LookupError(path) from None
        self.path = path
        self.request = message_factory.GetMessageClass(descriptor.input_type)
        self.client_streaming = descriptor.client_streaming
        self.server_streaming = descriptor.server_streaming


class ControlProxy:
    """Serves ``listen`` (``host:port``), signing with ``key`` and forwarding to ``upstream``."""

    def __init__(self, listen: str, upstream: str, key: Keypair | str | Path) -> None:
        _load_services()
        self.listen, self.upstream = listen, upstream
        self.keypair = key if isinstance(key, Keypair) else Keypair.load(Path(key))
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None
        self._methods: dict[str, _Method] = {}

    async def start(self) -> int:
        """Listen and connect; the port listened on (``listen`` may name port 0)."""
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        self._channel = grpc.aio.insecure_channel(self.upstream, options=options)
        self._server = grpc.aio.server(options=[*options, ("grpc.so_reuseport", 0)])
        self._server.add_generic_rpc_handlers([_Handler(self)])
        try:
            self.port = self._server.add_insecure_port(self.listen)
        except RuntimeError as exc:
            raise OSError(f"the control proxy could not listen on {self.listen}: {exc}") from None
        await self._server.start()
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
        if self._channel is not None:
            await self._channel.close()

    async def serve_forever(self) -> None:
        assert self._server is not None, "start() first"
        await self._server.wait_for_termination()

    def method(self, path: str) -> _Method:
        if path not in self._methods:
            self._methods[path] = _Method(path)
        return self._methods[path]

    def metadata(
        self, context: grpc.aio.ServicerContext, method: _Method, raw: bytes | None, body_sha256: str | None = None
    ) -> list[tuple[str, Any]]:
        """The caller's own metadata (its signature headers dropped), and this client's signature."""
        request = None if raw is None else method.request.FromString(raw)
        own = [
            (k, v) for k, v in context.invocation_metadata() or () if k not in METADATA_KEYS and not k.startswith(":")
        ]
        return [*own, *call_metadata(self.keypair, method.path, request, body_sha256=body_sha256)]

    async def spooled(self, method: _Method, requests: AsyncIterator[bytes]) -> SpooledStream:
        """A request stream read to its end, as the application sent it, and its digest for the signature."""
        spool = SpooledStream()
        async for raw in requests:
            spool.add(raw, method.request.FromString(raw).SerializeToString(deterministic=True))
        return spool

    def upstream_call(self, method: _Method) -> Callable[..., Any]:
        assert self._channel is not None
        kind = {
            (False, False): self._channel.unary_unary,
            (False, True): self._channel.unary_stream,
            (True, False): self._channel.stream_unary,
            (True, True): self._channel.stream_stream,
        }[(method.client_streaming, method.server_streaming)]
        return kind(method.path, request_serializer=None, response_deserializer=None)


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, proxy: ControlProxy) -> None:
        self.proxy = proxy

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        try:
            method = self.proxy.method(details.method)
        except LookupError:
            return None  # UNIMPLEMENTED, as from the facilitator itself
        proxy = self.proxy

        async def unary_unary(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            call = proxy.upstream_call(method)(raw, metadata=proxy.metadata(context, method, raw))
            return await _relayed(call, context)

        async def unary_stream(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            call = proxy.upstream_call(method)(raw, metadata=proxy.metadata(context, method, raw))
            try:
                async for reply in call:
                    yield reply
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")

        async def stream_unary(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
            spool = await proxy.spooled(method, requests)
            metadata = proxy.metadata(context, method, None, spool.digest())
            call = proxy.upstream_call(method)(spool.bodies(), metadata=metadata)
            return await _relayed(call, context)

        async def stream_stream(
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[bytes]:
            spool = await proxy.spooled(method, requests)
            metadata = proxy.metadata(context, method, None, spool.digest())
            call = proxy.upstream_call(method)(spool.bodies(), metadata=metadata)
            try:
                async for reply in call:
                    yield reply
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")

        if method.client_streaming and method.server_streaming:
            return grpc.stream_stream_rpc_method_handler(stream_stream)
        if method.client_streaming:
            return grpc.stream_unary_rpc_method_handler(stream_unary)
        if method.server_streaming:
            return grpc.unary_stream_rpc_method_handler(unary_stream)
        return grpc.unary_unary_rpc_method_handler(unary_unary)


async def _relayed(call: Any, context: grpc.aio.ServicerContext) -> bytes:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        await context.abort(exc.code(), exc.details() or "")
        raise  # abort raises; this is never reached


def run(listen: str, upstream: str, key: Keypair | str | Path, *, ready: Callable[[int], None] | None = None) -> None:
    """Serve until interrupted (``grid control-proxy``); ``ready`` hears the port once listening."""

    async def main() -> None:
        proxy = ControlProxy(listen, upstream, key)
        port = await proxy.start()
        if ready is not None:
            ready(port)
        try:
            await proxy.serve_forever()
        finally:
            await proxy.stop()

    asyncio.run(main())
