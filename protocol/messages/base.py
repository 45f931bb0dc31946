"""The base of every message and the one frame parser (DESIGN.md §3).

Messages are pydantic models with a literal ``type``; each direction of each hop has one union
of the messages it may carry. :func:`parse_frame` turns a text frame into one of them or raises
:class:`~protocol.errors.FrameError` with a reason code that the receiver sends back in an
``error`` frame.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from protocol.canonical import strict_loads
from protocol.errors import FrameError

__all__ = ["MAX_FRAME_BYTES", "Error", "Heartbeat", "Message", "parse_frame", "union_adapter"]

MAX_FRAME_BYTES = 16 * 1024 * 1024


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
    size = len(frame) if isinstance(frame, bytes) else len(frame.encode("utf-8", errors="surrogatepass"))
    if size > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}", code="frame_too_large")
    try:
        data = strict_loads(frame)
    except ValueError as exc:
        raise FrameError(f"frame is not JSON: {exc}", code="bad_json") from None
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
