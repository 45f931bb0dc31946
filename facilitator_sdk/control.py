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

import tempfile
from collections.abc import AsyncIterable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import grpc.aio

from protocol.keys import Keypair
from protocol.signed_calls import StreamDigest, call_metadata

__all__ = ["SpooledStream", "signed_aio_channel", "signed_channel"]

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # the facilitator's default; larger messages are refused there
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024  # a request stream past this waits on disk until it is sent


class SpooledStream:
    """A request stream read to its end before it is sent: its signature covers all of it.

    The messages wait in memory, on disk past ``SPOOL_MEMORY_BYTES``; :meth:`bodies` gives them back
    in order, as they were added.
    """

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115 (closed by bodies)
        self._digest = StreamDigest()

    def add(self, body: bytes, canonical: bytes | None = None) -> None:
        """One message as sent (``body``) and, when they differ, its deterministic serialization."""
        self._digest.add(body if canonical is None else canonical)
        self._file.write(len(body).to_bytes(8, "big"))
        self._file.write(body)

    def digest(self) -> str:
        return self._digest.hexdigest()

    def bodies(self) -> Iterator[bytes]:
        self._file.seek(0)
        try:
            while header := self._file.read(8):
                yield self._file.read(int.from_bytes(header, "big"))
        finally:
            self._file.close()


class _Details(NamedTuple):  # grpc.ClientCallDetails, with the signed metadata
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str]] | None
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


def _signed_metadata(
    keypair: Keypair, details: Any, request: Any, body_sha256: str | None = None
) -> list[tuple[str, str]]:
    """The call's own metadata and its signature (either flavour of call details)."""
    method = details.method.decode() if isinstance(details.method, bytes) else details.method
    return [*(details.metadata or ()), *call_metadata(keypair, method, request, body_sha256=body_sha256)]


def _spooled(messages: Iterable[Any]) -> tuple[SpooledStream, type | None]:
    spool, kind = SpooledStream(), None
    for message in messages:
        kind = type(message)
        spool.add(message.SerializeToString(deterministic=True))
    return spool, kind


def _replayed(spool: SpooledStream, kind: type | None) -> Iterator[Any]:
    for body in spool.bodies():
        assert kind is not None  # a body was added, so was its type
        yield kind.FromString(body)


def _signed(keypair: Keypair, details: Any, request: Any, body_sha256: str | None = None) -> _Details:
    metadata = _signed_metadata(keypair, details, request, body_sha256)
    return _Details(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready, details.compression
    )


def _keypair(key: Keypair | str | Path) -> Keypair:
    return key if isinstance(key, Keypair) else Keypair.load(Path(key))


class _Signer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor, grpc.StreamUnaryClientInterceptor):
    def __init__(self, keypair: Keypair) -> None:
        self.keypair = keypair

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_signed(self.keypair, details, request), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_signed(self.keypair, details, request), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Iterable[Any]) -> Any:
        spool, kind = _spooled(requests)
        return continuation(_signed(self.keypair, details, None, spool.digest()), _replayed(spool, kind))


class _AioSigner:
    """Signs ``grpc.aio`` calls; one subclass per kind of call, as ``grpc.aio`` files each under one kind only."""

    def __init__(self, keypair: Keypair) -> None:
        self.keypair = keypair

    def _signed(
        self, details: grpc.aio.ClientCallDetails, request: Any, body_sha256: str | None = None
    ) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*_signed_metadata(self.keypair, details, request, body_sha256))
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _AioUnaryUnary(_AioSigner, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._signed(details, request), request)


class _AioUnaryStream(_AioSigner, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._signed(details, request), request)


class _AioStreamUnary(_AioSigner, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Any, details: Any, requests: Iterable[Any] | AsyncIterable[Any]
    ) -> Any:
        if isinstance(requests, AsyncIterable):
            requests = [message async for message in requests]  # then spooled like a sync stream
        spool, kind = _spooled(requests)
        return await continuation(self._signed(details, None, spool.digest()), _replayed(spool, kind))


def _options() -> list[tuple[str, int]]:
    return [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]


def signed_channel(endpoint: str, key: Keypair | str | Path) -> grpc.Channel:
    """A channel to ``endpoint`` (``host:port``) that signs every call with ``key``."""
    channel = grpc.insecure_channel(endpoint, options=_options())
    return grpc.intercept_channel(channel, _Signer(_keypair(key)))


def signed_aio_channel(endpoint: str, key: Keypair | str | Path) -> grpc.aio.Channel:
    """The ``grpc.aio`` twin of :func:`signed_channel`."""
    keypair = _keypair(key)
    signers = [_AioUnaryUnary(keypair), _AioUnaryStream(keypair), _AioStreamUnary(keypair)]
    return grpc.aio.insecure_channel(endpoint, options=_options(), interceptors=signers)
