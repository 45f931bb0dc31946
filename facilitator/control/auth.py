"""Every gRPC call signed by its client (docs/control-plane.md, "Authentication").

:class:`SignedCalls` wraps each method's handler: before the servicer sees a request, the call's
signature is checked over the parsed request (:func:`protocol.signed_calls.verify_call`), the
client must be allowed (``GRID_CLIENT_HOTKEYS``) and its nonce is claimed in the database, as a
REST request's is. The servicer reads the caller's hotkey with :func:`caller`.

A request stream's signature covers the whole stream (:class:`protocol.signed_calls.StreamDigest`),
so it is checked when the stream ends: :class:`_SignedStream` hands the servicer each message as it
comes and ends the stream only once the signature holds. A servicer of a request stream keeps what
it reads aside and acts on it only after the stream has ended.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from asgiref.sync import sync_to_async
from django.conf import settings

from facilitator.api.auth import claim_nonce
from protocol.errors import RequestAuthError
from protocol.signed_calls import StreamDigest, signature_of, verify_call

__all__ = ["SignedCalls", "call_signature", "caller"]

_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("grid_control_caller")
_SIGNATURE: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("grid_control_signature")


def caller() -> str:
    """The hotkey that signed the call being served."""
    return _CALLER.get()


def call_signature() -> dict[str, str]:
    """The signature entries of the call being served, kept as proof of what the client asked."""
    return _SIGNATURE.get()


class SignedCalls(grpc.aio.ServerInterceptor):
    """Refuses unsigned, stale, replayed, tampered and unallowed calls before their servicer runs."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _checked(details.method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _checked_stream(details.method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _checked_request_stream(details.method, handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        raise NotImplementedError(f"{details.method}: bidirectional streams are not served")


async def _authenticate(
    method: str,
    request: Any,
    context: grpc.aio.ServicerContext,
    *,
    body_sha256: str | None = None,
    now: float | None = None,
) -> None:
    try:
        signed = verify_call(context.invocation_metadata(), method, request, body_sha256=body_sha256, now=now)
        allowed = settings.FACILITATOR_CLIENT_HOTKEYS
        if "*" not in allowed and signed.hotkey not in allowed:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"forbidden: client {signed.hotkey} is not allowed here"
            )
        await sync_to_async(claim_nonce)(signed)
    except RequestAuthError as exc:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{exc.code}: {exc.message}")
    _CALLER.set(signed.hotkey)
    _SIGNATURE.set(signature_of(context.invocation_metadata()))


def _checked(method: str, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def serve(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _authenticate(method, request, context)
        return await behaviour(request, context)

    return serve


def _checked_stream(method: str, behaviour: Callable[..., Any]) -> Callable[..., Any]:
    async def serve(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _authenticate(method, request, context)
        async for reply in behaviour(request, context):
            yield reply

    return serve


class _SignedStream:
    """A request stream whose end is its signature checked: it stops only if the stream was signed."""

    def __init__(self, method: str, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
        self.method, self.requests, self.context = method, requests, context
        self.digest, self.started = StreamDigest(), time.time()  # freshness is the call's start, not its end

    def __aiter__(self) -> _SignedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            message = await anext(self.requests)
        except StopAsyncIteration:
            await _authenticate(self.method, None, self.context, body_sha256=self.digest.hexdigest(), now=self.started)
            raise
        self.digest.add(message.SerializeToString(deterministic=True))
        return message


def _checked_request_stream(method: str, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def serve(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        return await behaviour(_SignedStream(method, requests.__aiter__(), context), context)

    return serve
