"""Executor classes the miner offers, parsed from ``GRID_EXECUTOR_CLASSES`` (``CLASS:TOTAL:WARM,...``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClassConfig", "parse_classes"]


@dataclass(frozen=True)
class ClassConfig:
    name: str
    total: int
    warm: int


def parse_classes(value: str) -> dict[str, ClassConfig]:
    """Parse ``"cpu.small:4:2,cpu.large:1:0"``.

    Raises:
        ValueError: a malformed entry, with the entry quoted.
    """
    classes: dict[str, ClassConfig] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        parts = entry.split(":")
        try:
            name, total, warm = parts[0], int(parts[1]), int(parts[2]) if len(parts) > 2 else 0
        except (IndexError, ValueError):
            raise ValueError(f"executor class {entry!r} must look like NAME:TOTAL[:WARM]") from None
        if not name or total < 0 or not 0 <= warm <= total or len(parts) > 3:
            raise ValueError(f"executor class {entry!r}: need 0 <= WARM <= TOTAL")
        classes[name] = ClassConfig(name, total, warm)
    return classes
