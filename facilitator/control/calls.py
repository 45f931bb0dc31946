"""What every service shares: a refusal with its gRPC status, and the block that turns it into one."""

from __future__ import annotations

from typing import Any

import grpc

from facilitator.control.filters import BadFilter

__all__ = ["Refused", "answer"]


class Refused(Exception):
    """A call that cannot be served as asked: its gRPC status and the reason."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class answer:
    """Turns :class:`Refused` and :class:`BadFilter` raised in its block into the call's gRPC status."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self.context = context

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, Refused):
            await self.context.abort(exc.code, exc.message)
        if isinstance(exc, BadFilter):
            await self.context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        return False
