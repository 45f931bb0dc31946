"""Executor classes the miner offers, parsed from ``GRID_EXECUTOR_CLASSES``.

``NAME:TOTAL[:WARM][:KEY=VALUE...]``, comma-separated: ``cpu.small:4:2,cpu.large:1``. A standard
class name (:data:`protocol.classes.STANDARD_CLASSES`) brings its spec; ``cpu=``, ``memory_mb=``,
``gpus=``, ``gpu_memory_mb=`` and ``gpu_model=`` set or override it
(``mine.big:2:0:cpu=16:memory_mb=65536``). A class with neither has no spec: validators route to
it by name alone. ``gpu_share=N`` (the miner's own, not in the spec) lets up to N executors of
the class share one GPU; without it, each GPU serves one executor (docs/gpu.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from protocol.classes import STANDARD_CLASSES, ClassSpec

__all__ = ["ClassConfig", "parse_classes"]

SPEC_KEYS = ("cpu", "memory_mb", "gpus", "gpu_memory_mb", "gpu_model")
MINER_KEYS = ("gpu_share",)


@dataclass(frozen=True)
class ClassConfig:
    name: str
    total: int
    warm: int
    spec: ClassSpec | None = None
    gpu_share: int = 1  # executors of the class per GPU

    @property
    def gpus(self) -> int:
        """GPUs per executor."""
        return self.spec.gpus if self.spec is not None else 0


def parse_classes(value: str) -> dict[str, ClassConfig]:
    """Parse ``"cpu.small:4:2,cpu.large:1:0"``.

    Raises:
        ValueError: a malformed entry, with the entry quoted.
    """
    classes: dict[str, ClassConfig] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        counts, options = _split(entry)
        if len(counts) not in (2, 3):
            raise ValueError(f"executor class {entry!r} must look like NAME:TOTAL[:WARM][:KEY=VALUE...]")
        name = counts[0]
        if not name:
            raise ValueError(f"executor class {entry!r} has no name")
        try:
            total, warm = int(counts[1]), int(counts[2]) if len(counts) == 3 else 0
        except ValueError:
            raise ValueError(f"executor class {entry!r}: TOTAL and WARM must be whole numbers") from None
        if total < 0 or not 0 <= warm <= total:
            raise ValueError(f"executor class {entry!r}: need 0 <= WARM <= TOTAL")
        if name in classes:
            raise ValueError(f"executor class {name!r} is listed twice")
        share = options.pop("gpu_share", "1")
        if not share.isdigit() or int(share) < 1:
            raise ValueError(f"executor class {entry!r}: gpu_share must be a whole number ≥ 1")
        classes[name] = ClassConfig(name, total, warm, _spec(entry, name, options), gpu_share=int(share))
    return classes


def _split(entry: str) -> tuple[list[str], dict[str, str]]:
    counts: list[str] = []
    options: dict[str, str] = {}
    for part in entry.split(":"):
        if "=" in part:
            key, _, val = part.partition("=")
            if key not in SPEC_KEYS + MINER_KEYS:
                known = ", ".join(SPEC_KEYS + MINER_KEYS)
                raise ValueError(f"executor class {entry!r}: unknown key {key!r} (known: {known})")
            options[key] = val
        elif options:
            raise ValueError(f"executor class {entry!r}: KEY=VALUE parts come last")
        else:
            counts.append(part)
    return counts, options


def _spec(entry: str, name: str, options: dict[str, str]) -> ClassSpec | None:
    base = STANDARD_CLASSES.get(name)
    if not options:
        return base
    fields = {**(base.model_dump() if base else {}), **options}
    try:
        return ClassSpec.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"executor class {entry!r}: {problems}") from None
