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
        if len(parts) not in (2, 3):
            raise ValueError(f"executor class {entry!r} must look like NAME:TOTAL[:WARM]")
        name = parts[0]
        if not name:
            raise ValueError(f"executor class {entry!r} has no name")
        try:
            total, warm = int(parts[1]), int(parts[2]) if len(parts) == 3 else 0
        except ValueError:
            raise ValueError(f"executor class {entry!r}: TOTAL and WARM must be whole numbers") from None
        if total < 0 or not 0 <= warm <= total:
            raise ValueError(f"executor class {entry!r}: need 0 <= WARM <= TOTAL")
        if name in classes:
            raise ValueError(f"executor class {name!r} is listed twice")
        classes[name] = ClassConfig(name, total, warm)
    return classes
