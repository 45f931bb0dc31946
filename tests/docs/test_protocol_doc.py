"""docs/protocol.md's frame table against the unions of protocol/messages/ that each hop accepts.

Each row of the table (hop, direction) must list every frame type the matching union accepts,
and the table must name no type that does not exist. ``heartbeat`` and ``error`` (every union)
are described above the table, the ``auth.*`` frames in the handshake section.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import TypeAdapter

import protocol.messages as messages
from protocol.messages.base import Message

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
COMMON = {"heartbeat", "error"}
# A row's direction → the union that end accepts.
DIRECTIONS = {
    "F→V": "FACILITATOR_TO_VALIDATOR",
    "V→F": "VALIDATOR_TO_FACILITATOR",
    "F→C": "FACILITATOR_TO_CLIENT",
    "C→F": "CLIENT_TO_FACILITATOR",
    "V→M": "VALIDATOR_TO_MINER",
    "M→V": "MINER_TO_VALIDATOR",
    "M→E": "MINER_TO_EXECUTOR",
    "E→M": "EXECUTOR_TO_MINER",
}
# A frame type at the start of a code span: `job.new{…}`, `manifest{…}` or `job.accepted` (a
# dotless name alone, like `crossval`, is a field).
FRAME = re.compile(r"`([a-z_]+(?:\.[a-z_]+)+(?=[{`])|[a-z_]+(?=\{))")


def accepted(adapter: TypeAdapter[object]) -> set[str]:
    return set(adapter.json_schema()["discriminator"]["mapping"])


def all_message_types() -> set[str]:
    """Every ``type`` of a Message subclass defined in protocol/messages/."""
    found: set[str] = set()
    pending = list(Message.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("protocol.messages."):
            default = cls.model_fields["type"].default
            assert isinstance(default, str), cls
            found.add(default)
    return found


def frames_section() -> str:
    text = DOC.read_text()
    start = text.index("\n## Frames\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def table_rows() -> dict[str, set[str]]:
    """Direction → the frame types its rows name (a direction may take several rows)."""
    rows: dict[str, set[str]] = {}
    for line in frames_section().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1] in DIRECTIONS:
            rows.setdefault(cells[1], set()).update(FRAME.findall(cells[2]))
    return rows


def test_the_table_has_a_row_for_every_direction() -> None:
    assert set(table_rows()) == set(DIRECTIONS)


def test_every_message_type_is_in_some_union() -> None:
    adapters = [value for value in vars(messages).values() if isinstance(value, TypeAdapter)]
    assert len(adapters) == len(DIRECTIONS) + 2  # and the two of the handshake
    unions = set().union(*(accepted(adapter) for adapter in adapters))
    assert all_message_types() == unions


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
def test_each_row_lists_every_frame_its_union_accepts(direction: str) -> None:
    rows = table_rows()
    listed = set(rows[direction])
    if direction == "M→V":
        listed |= rows["E→M"]  # "then the executor's reports": the miner relays them up
    missing = accepted(getattr(messages, DIRECTIONS[direction])) - COMMON - listed
    assert not missing, f"docs/protocol.md's {direction} row does not list {sorted(missing)}"


def test_the_table_names_no_type_that_does_not_exist() -> None:
    named = set().union(*table_rows().values())
    assert named - all_message_types() == set()


def test_every_row_names_only_frames_that_travel_that_way_or_its_replies() -> None:
    rows = table_rows()
    for direction, listed in rows.items():
        allowed = accepted(getattr(messages, DIRECTIONS[direction]))
        if direction == "F→C":
            allowed |= accepted(messages.CLIENT_TO_FACILITATOR)  # "a `job.watch` first replays …"
        assert listed <= allowed, f"{direction}: {sorted(listed - allowed)} do not travel that way"


def test_the_common_and_handshake_frames_are_described() -> None:
    frames = frames_section()
    assert "`heartbeat`" in frames and "`error{code, message, ref}`" in frames
    handshake = DOC.read_text()
    for frame in (accepted(messages.AUTH_FROM_SERVER) | accepted(messages.AUTH_FROM_CLIENT)) - COMMON:
        assert f"{frame}{{" in handshake, frame
