"""What the benchmarks share: the statistics they report, their command lines."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable

__all__ = ["bench_parser", "changed_options", "percentile"]


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), ``q`` in 0..100; NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def bench_parser(script: str, doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of ``bench/<script>``: its docstring's first paragraph as description."""
    return argparse.ArgumentParser(
        prog=f"bench/{script}",
        description=(doc or "").split("\n\n")[0],
        epilog="Progress goes to stderr; the last line of stdout is one JSON object with every figure.",
    )


def changed_options(args: argparse.Namespace, defaults: argparse.Namespace, names: Iterable[str]) -> str:
    """`` --name value`` for each of ``names`` whose value differs from its default (for "Reproduce:")."""
    return "".join(
        f" --{name.replace('_', '-')} {getattr(args, name)}"
        for name in names
        if getattr(args, name) != getattr(defaults, name)
    )
