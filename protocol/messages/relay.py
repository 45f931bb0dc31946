"""Relayed messages: calls a running job makes to the facilitator, and their replies (DESIGN.md §3).

A ``relay.call`` travels up, executor → miner → validator → facilitator, and its ``relay.reply``
down the same way. No hop looks inside ``body``, and none involves the job driver: each checks
only that the frame belongs to a job attempt it carries for the sender (the miner: the
executor's own slot; the validator: an attempt it drives on that miner; the facilitator: a job
assigned to that validator), then passes it on. What a call does is its ``kind``, answered by the
facilitator's handler of that kind (facilitator/relay.py). ``call_id`` is the caller's, unique
among its calls, and names the reply.

New families join :data:`RELAYED_UP` / :data:`RELAYED_DOWN`, which every union of the path
includes (protocol/messages/__init__.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.messages.base import Message

__all__ = ["RELAYED_DOWN", "RELAYED_UP", "RelayCall", "RelayError", "RelayReply"]

_JOB_ID = Field(min_length=1, max_length=64)
_Attempt = Annotated[int, Field(ge=1, le=2**31 - 1)]
_CALL_ID = Field(min_length=1, max_length=64)
_KIND = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")


class RelayCall(Message):
    """A call from a running job's attempt to the facilitator."""

    type: Literal["relay.call"] = "relay.call"
    job_id: str = _JOB_ID
    attempt: _Attempt
    call_id: str = _CALL_ID
    kind: str = _KIND
    body: dict[str, Any] = Field(default_factory=dict)


class RelayError(BaseModel):
    """Why a call was not answered: ``unknown_kind``, ``unknown_job``, ``unavailable`` or the kind's own code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(min_length=1, max_length=64)
    message: str = Field("", max_length=2000)


class RelayReply(Message):
    """The answer to the ``relay.call`` of the same job, attempt and ``call_id``."""

    type: Literal["relay.reply"] = "relay.reply"
    job_id: str = _JOB_ID
    attempt: _Attempt
    call_id: str = _CALL_ID
    ok: bool
    body: dict[str, Any] = Field(default_factory=dict)
    error: RelayError | None = None

    @classmethod
    def refuse(cls, call: RelayCall, code: str, message: str) -> RelayReply:
        """The ``ok: false`` reply to ``call``."""
        return cls(
            job_id=call.job_id,
            attempt=call.attempt,
            call_id=call.call_id,
            ok=False,
            error=RelayError(code=code, message=message),
        )


RELAYED_UP = (RelayCall,)
RELAYED_DOWN = (RelayReply,)
