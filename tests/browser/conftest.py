"""A real local grid with its dashboard process, and Debian's chromium driven by Playwright.

Screenshots of every step go to ``test-artifacts/screenshots/`` (kept by CI as test artifacts).
The browser is ``/usr/bin/chromium`` (``scripts/system_deps.sh`` installs it); Playwright never
downloads one of its own here. Without it these tests are skipped, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from grid.local import LocalGrid, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
LOGS: list[Path] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A failing browser test shows the end of the grid's and the dashboard's logs."""
    report = yield
    if report.failed:
        for path in [log for log in LOGS if log.exists()]:
            tail = path.read_text(errors="replace").splitlines()[-40:]
            report.sections.append((f"{path.name} ({path.parent})", "\n".join(tail)))
    return report


@dataclass
class Dashboard:
    grid: LocalGrid
    url: str
    username: str
    password: str


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (scripts/system_deps.sh, as root)")
    return CHROMIUM


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, chromium_path: Path) -> Iterator[Dashboard]:
    """A local grid (facilitator, validator, miner) serving the validator's dashboard, as ``grid up`` runs it."""
    home = tmp_path_factory.mktemp("grid")
    grid = LocalGrid(home, facilitator_port=free_port(), miner_port=free_port(), dashboard_port=free_port())
    LOGS.extend(home / "logs" / f"{role}.log" for role in ("facilitator", "validator", "miner", "dashboard"))
    grid.start(timeout=60)
    try:
        assert grid.admin_login is not None and grid.dashboard_url is not None
        yield Dashboard(grid, grid.dashboard_url, *grid.admin_login)
    finally:
        grid.stop()


@pytest.fixture(scope="module")
def browser(chromium_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):
    """A fresh browser page; ``page.shot(step)`` saves ``test-artifacts/screenshots/<test>-<step>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    name = request.node.name.removeprefix("test_")

    def shot(step: str) -> Path:
        path = SCREENSHOTS / f"{name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    page.shot = shot
    page.errors = errors
    try:
        yield page
        reported = list(errors)
        if reported:
            shot("page-errors")
    finally:
        context.close()
    assert not reported, f"the page reported errors (a script error, or a Content-Security-Policy refusal): {reported}"
