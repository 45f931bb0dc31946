"""One real local grid for the ``grid job …`` tests (tests/integration/conftest.py's ``start_grid``).

Each test gets a ``GRID_HOME`` of its own, hence a client key of its own (``job list`` sees only
its jobs), and finds the grid through ``GRID_FACILITATOR``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from grid.local import LocalGrid
from tests.integration.conftest import running_grid


@pytest.fixture(scope="session")
def job_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    with running_grid(tmp_path_factory.mktemp("job-grid")) as grid:
        yield grid


@pytest.fixture
def client_home(job_grid: LocalGrid, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("GRID_HOME", str(home))
    monkeypatch.setenv("GRID_FACILITATOR", job_grid.facilitator_url)
    monkeypatch.delenv("GRID_DEBUG", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.chdir(tmp_path)
    return home
