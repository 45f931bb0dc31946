"""``grid monitor`` in a real browser, against a real local grid: a job submitted from the CLI
appears and completes on the open page (pushed, no reload); its page shows the timeline, the logs
and a download that works; the status filter hides what it should.

Screenshots of every step go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from grid.local import LocalGrid
from tests.browser.conftest import LOGS
from tests.grid.conftest import RunningMonitor, running_monitor
from tests.integration.conftest import running_grid

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SLOW_JOB = "import sys, time; time.sleep(2); print('monitored'); print('a warning', file=sys.stderr)"
DRIVEN = ["accepted", "executor_ready", "volumes_ready", "execution_done", "completed"]  # after "sent" and "received"


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, chromium_path: Path) -> Iterator[LocalGrid]:
    home = tmp_path_factory.mktemp("monitor-grid")
    LOGS.extend(home / "logs" / f"{role}.log" for role in ("facilitator", "validator", "miner"))
    with running_grid(home) as grid:
        yield grid


@pytest.fixture
def monitor(grid: LocalGrid, tmp_path: Path) -> Iterator[RunningMonitor]:
    with running_monitor(tmp_path / "home", grid.facilitator_url) as running:
        yield running


def grid_cli(monitor: RunningMonitor, *argv: str) -> str:
    """``grid …`` as a user runs it, with the monitor's home (hence its key) and facilitator."""
    env = {**os.environ, "GRID_HOME": str(monitor.home), "GRID_FACILITATOR": monitor.facilitator_url}
    done = subprocess.run(
        [sys.executable, "-m", "grid.cli", *argv], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_job_from_the_cli_appears_and_completes_without_a_reload(page: Page, monitor: RunningMonitor):
    page.goto(monitor.url + "/")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "open")
    expect(page.locator("#jobs-empty")).to_be_visible()
    page.evaluate("window.notReloaded = true")
    page.shot("empty")

    job_id = grid_cli(monitor, "job", "run", "--detach", "--", sys.executable, "-c", SLOW_JOB).strip()
    row = page.locator(f'#jobs tr[data-job="{job_id}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("cpu.small")
    expect(row.locator(".status")).to_have_text(re.compile("sent|received|accepted|executor_ready|volumes_ready"))
    page.shot("running")
    expect(row.locator(".status")).to_have_text("completed", timeout=30_000)
    expect(row).to_have_class(re.compile(r"\bdone\b"))
    expect(row.locator(".ran")).to_have_text(re.compile(r"^2\.\d\d s$"))
    assert page.evaluate("window.notReloaded") is True  # every change was pushed into the same page
    page.shot("completed")

    page.select_option("#filters select[name=status]", "failed")
    expect(row).to_be_hidden()
    expect(page).to_have_url(re.compile(r"\?status=failed$"))
    page.select_option("#filters select[name=status]", "completed")
    expect(row).to_be_visible()
    expect(page.locator("#shown")).to_have_text("1 of 1 shown")

    row.locator("a.job-id").click()
    expect(page.locator("h1")).to_contain_text(job_id)
    expect(page.locator("#job-status .status")).to_have_text("completed")
    statuses = page.locator('#timeline ol[data-attempt="1"] li .status').all_inner_texts()
    assert [status for status in statuses if status not in ("sent", "received")] == DRIVEN
    expect(page.locator("#stdout")).to_have_text("monitored\n")
    expect(page.locator("#stderr")).to_have_text("a warning\n")
    page.shot("job-page")
    with page.expect_download() as download_info:
        page.locator("#files a", has_text="stdout").click()
    download = download_info.value
    assert download.suggested_filename == "stdout"
    assert Path(download.path()).read_bytes() == b"monitored\n"


def test_a_job_page_follows_a_job_from_its_start(page: Page, monitor: RunningMonitor):
    job_id = grid_cli(monitor, "job", "run", "--detach", "--", sys.executable, "-c", SLOW_JOB).strip()
    page.goto(f"{monitor.url}/jobs/{job_id}")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "open")
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#job-status .status")).to_have_text("completed", timeout=30_000)
    expect(page.locator("#stdout")).to_have_text("monitored\n")
    expect(page.locator("#files a", has_text="stderr")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    page.shot("followed")
