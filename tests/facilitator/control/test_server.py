"""The control plane starts with the facilitator, on its own port; a port it cannot have stops the start, saying why."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from grid.local import GridStartError, LocalGrid, free_port


def test_a_taken_control_port_stops_the_facilitator_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        grid = LocalGrid(tmp_path / "grid", facilitator_port=free_port(), miner_port=free_port(), control_port=port)
        with pytest.raises(GridStartError, match="facilitator exited"):
            grid.start(timeout=30)
    log = (tmp_path / "grid" / "logs" / "facilitator.log").read_text()
    assert f"the control plane could not listen on 127.0.0.1:{port} (GRID_CONTROL_PORT)" in log
