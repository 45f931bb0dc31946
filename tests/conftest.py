"""Suite-wide wiring: which tests cross a channel layer (rerun on Redis by scripts/test.sh)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHANNEL_LAYER_SUITES = ("integration", "facilitator", "miner")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        parts = Path(item.path).relative_to(root).parts
        if parts and parts[0] in CHANNEL_LAYER_SUITES and parts[:2] != ("facilitator", "storage"):
            item.add_marker(pytest.mark.redis_layer)
        if parts and parts[0] == "integration":
            item.add_marker(pytest.mark.slow)
