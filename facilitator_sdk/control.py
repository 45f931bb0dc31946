"""Signed gRPC channels to the control plane (docs/control-plane.md), for the stock ArmoniK client.

Every call leaving these channels carries the client's signature (:mod:`protocol.signed_calls`);
the stock ``armonik.client`` classes are used over them unchanged::

    from armonik.client import ArmoniKSessions
    from facilitator_sdk.control import signed_channel

    with signed_channel("127.0.0.1:8005", ".grid/keys/client.key") as channel:
        session_id = ArmoniKSessions(channel).create_session(options)

:func:`signed_aio_channel` is the ``grpc.aio`` twin. Both take a :class:`~protocol.keys.Keypair`
or the path of a key file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import grpc.aio

from protocol.keys import Keypair
from protocol.signed_calls import call_metadata

__all__ = ["signed_aio_channel", "signed_channel"]

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # the facilitator's default; larger messages are refused there


class _Details(NamedTuple):  # grpc.ClientCallDetails, with the signed metadata
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str]] | None
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


def _signed_metadata(keypair: Keypair, details: Any, request: Any) -> list[tuple[str, str]]:
    """The call's own metadata and its signature (either flavour of call details)."""
    method = details.method.decode() if isinstance(details.method, bytes) else details.method
    return [*(details.metadata or ()), *call_metadata(keypair, method, request)]


def _signed(keypair: Keypair, details: Any, request: Any) -> _Details:
    metadata = _signed_metadata(keypair, details, request)
    return _Details(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready, details.compression
    )


def _keypair(key: Keypair | str | Path) -> Keypair:
    return key if isinstance(key, Keypair) else Keypair.load(Path(key))


class _Signer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, keypair: Keypair) -> None:
        self.keypair = keypair

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_signed(self.keypair, details, request), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_signed(self.keypair, details, request), request)


class _AioSigner(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, keypair: Keypair) -> None:
        self.keypair = keypair

    def _signed(self, details: grpc.aio.ClientCallDetails, request: Any) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*_signed_metadata(self.keypair, details, request))
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._signed(details, request), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._signed(details, request), request)


def _options() -> list[tuple[str, int]]:
    return [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]


def signed_channel(endpoint: str, key: Keypair | str | Path) -> grpc.Channel:
    """A channel to ``endpoint`` (``host:port``) that signs every call with ``key``."""
    channel = grpc.insecure_channel(endpoint, options=_options())
    return grpc.intercept_channel(channel, _Signer(_keypair(key)))


def signed_aio_channel(endpoint: str, key: Keypair | str | Path) -> grpc.aio.Channel:
    """The ``grpc.aio`` twin of :func:`signed_channel`."""
    return grpc.aio.insecure_channel(endpoint, options=_options(), interceptors=[_AioSigner(_keypair(key))])
