"""Suite-wide wiring: which tests cross a channel layer (rerun on Redis by scripts/test.sh)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHANNEL_LAYER_SUITES = ("integration", "facilitator", "miner")
# Files under those suites that cross no channel layer of this process (their server runs apart).
NO_CHANNEL_LAYER = {("facilitator", "test_openapi_schemathesis.py")}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        parts = Path(item.path).relative_to(root).parts
        if (
            parts
            and parts[0] in CHANNEL_LAYER_SUITES
            and parts[:2] != ("facilitator", "storage")
            and parts[:2] not in NO_CHANNEL_LAYER
        ):
            item.add_marker(pytest.mark.redis_layer)
        if parts and parts[0] == "integration":
            item.add_marker(pytest.mark.slow)
