"""Every gRPC call signed by its client (docs/control-plane.md, "Authentication").

:class:`SignedCalls` wraps each method's handler: before the servicer sees a request, the call's
signature is checked over the parsed request (:func:`protocol.signed_calls.verify_call`), the
client must be allowed (``GRID_CLIENT_HOTKEYS``) and its nonce is claimed in the database, as a
REST request's is. The servicer reads the caller's hotkey with :func:`caller`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from asgiref.sync import sync_to_async
from django.conf import settings

from facilitator.api.auth import claim_nonce
from protocol.errors import RequestAuthError
from protocol.signed_calls import verify_call

__all__ = ["SignedCalls", "caller"]

_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("grid_control_caller")


def caller() -> str:
    """The hotkey that signed the call being served."""
    return _CALLER.get()


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
        raise NotImplementedError(f"{details.method}: request streams are not served yet")


async def _authenticate(method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
    try:
        signed = verify_call(context.invocation_metadata(), method, request)
        allowed = settings.FACILITATOR_CLIENT_HOTKEYS
        if "*" not in allowed and signed.hotkey not in allowed:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"forbidden: client {signed.hotkey} is not allowed here"
            )
        await sync_to_async(claim_nonce)(signed)
    except RequestAuthError as exc:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{exc.code}: {exc.message}")
    _CALLER.set(signed.hotkey)


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
