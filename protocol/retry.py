"""Reconnect delays as a pure generator, testable without sleeping (STYLE.md, protocol/)."""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["backoff"]


def backoff(initial: float = 0.05, maximum: float = 5.0, factor: float = 2.0, jitter: float = 0.2) -> Iterator[float]:
    """Yield growing delays, each randomised by ±``jitter``, capped at ``maximum``."""
    delay = min(initial, maximum)
    while True:
        yield delay * (1 + random.uniform(-jitter, jitter))
        delay = min(delay * factor, maximum)
