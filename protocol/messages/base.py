"""The base of every message and the one frame parser (DESIGN.md §3).

Messages are pydantic models with a literal ``type``; each direction of each hop has one union
of the messages it may carry. :func:`parse_frame` turns a text frame into one of them or raises
:class:`~protocol.errors.FrameError` with a reason code that the receiver sends back in an
``error`` frame.

A websocket message holds one frame (a JSON object), or a batch: a JSON array of up to
``MAX_BATCH`` frames a sender had queued at once (:func:`join_frames`, :func:`parse_frames`),
each handled as if it had come alone. Batches save a message's cost on both sides of a busy hop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from protocol.canonical import strict_loads
from protocol.errors import FrameError

__all__ = [
    "MAX_BATCH",
    "MAX_FRAME_BYTES",
    "Error",
    "Heartbeat",
    "Message",
    "join_frames",
    "parse_frame",
    "parse_frames",
    "union_adapter",
]

MAX_FRAME_BYTES = 16 * 1024 * 1024
MAX_BATCH = 256  # frames in one batch
MAX_BATCH_BYTES = 1024 * 1024  # characters in one batch: far below MAX_FRAME_BYTES


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    type: str

    def encode(self) -> str:
        return self.model_dump_json()


class Heartbeat(Message):
    type: Literal["heartbeat"] = "heartbeat"


class Error(Message):
    """Sent back for a frame the receiver could not act on; ``ref`` names the job if known."""

    type: Literal["error"] = "error"
    code: str
    message: str
    ref: str | None = None
    # Each field's problem, as a REST refusal's ``errors`` lists them (a refused job.create).
    errors: list[dict[str, Any]] | None = Field(default=None, max_length=100)

    def encode(self) -> str:
        return self.model_dump_json(exclude_none=True)  # absent, not null: older peers read it alike


def parse_frame(frame: str | bytes, adapter: TypeAdapter[Any]) -> Any:
    """Parse one frame with the union ``adapter`` of the direction it arrived on.

    A frame is JSON as :func:`~protocol.canonical.strict_loads` reads it (UTF-8, no NaN or
    Infinity, no lone surrogates, nested at most ``MAX_DEPTH`` deep), so every message returned
    here can be encoded and sent on.

    Raises:
        FrameError: ``frame_too_large``, ``bad_json``, ``unknown_type`` or ``invalid_message``.
    """
    return _validate(_decode(frame), adapter)


def parse_frames(frame: str | bytes, adapter: TypeAdapter[Any]) -> list[Any]:
    """Parse a websocket message: one frame, or a batch of them.

    Returns each frame's message or, for a frame of a batch that does not parse, its
    :class:`~protocol.errors.FrameError` in its place: the batch's other frames still count.

    Raises:
        FrameError: the message as a whole is unreadable (as :func:`parse_frame` raises), or a
            batch is empty or holds more than ``MAX_BATCH`` frames (``bad_json``).
    """
    data = _decode(frame)
    if not isinstance(data, list):
        return [_validate(data, adapter)]
    if not data or len(data) > MAX_BATCH:
        raise FrameError(f"a batch holds 1 to {MAX_BATCH} frames, not {len(data)}", code="bad_json")
    parsed: list[Any] = []
    for item in data:
        try:
            parsed.append(_validate(item, adapter))
        except FrameError as exc:
            parsed.append(exc)
    return parsed


def join_frames(frames: list[str]) -> Iterator[str]:
    """Encoded frames as few websocket messages as the limits allow, in order: batches of at
    most ``MAX_BATCH`` frames and ``MAX_BATCH_BYTES`` characters (a bigger frame goes alone)."""
    start, size = 0, 0
    for index, frame in enumerate(frames):
        if index > start and (index - start >= MAX_BATCH or size + len(frame) + 1 > MAX_BATCH_BYTES):
            yield _joined(frames[start:index])
            start, size = index, 0
        size += len(frame) + 1
    if start < len(frames):
        yield _joined(frames[start:])


def _joined(frames: list[str]) -> str:
    return frames[0] if len(frames) == 1 else "[" + ",".join(frames) + "]"


def _decode(frame: str | bytes) -> Any:
    size = len(frame) if isinstance(frame, bytes) else len(frame.encode("utf-8", errors="surrogatepass"))
    if size > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}", code="frame_too_large")
    try:
        data = strict_loads(frame)
    except ValueError as exc:
        raise FrameError(f"frame is not JSON: {exc}", code="bad_json") from None
    return data


def _validate(data: Any, adapter: TypeAdapter[Any]) -> Any:
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise FrameError("frame must be a JSON object with a string 'type'", code="bad_json")
    try:
        return adapter.validate_python(data)
    except RecursionError:
        raise FrameError("frame is nested too deeply", code="invalid_message") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "union_tag_invalid":
            raise FrameError(f"unknown message type {data['type']!r}", code="unknown_type") from None
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'message'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise FrameError(f"invalid {data['type']} message: {fields}", code="invalid_message") from None


def union_adapter(*models: type[Message]) -> TypeAdapter[Any]:
    """A discriminated union of ``models`` keyed on ``type``."""
    from typing import Annotated, Union

    from pydantic import Field

    return TypeAdapter(Annotated[Union[tuple(models)], Field(discriminator="type")])  # noqa: UP007
