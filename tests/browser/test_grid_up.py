"""``grid up`` serves the dashboard and prints its URL and the local admin's login, which work."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from grid.local import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DASHBOARD_LINE = re.compile(r"^dashboard: (http://127\.0\.0\.1:(\d+))/ \(login (\S+) / (\S+)\)$")


def read_until(process: subprocess.Popen, pattern: re.Pattern, timeout: float) -> re.Match:
    """The first line of the process's stdout matching ``pattern`` (read by a thread: no blocking past ``timeout``)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if match := pattern.match(line):
            return match
    raise AssertionError("`grid up` never printed a dashboard line; it printed:\n" + "\n".join(seen))


def test_grid_up_prints_a_dashboard_url_and_login_that_work(page: Page, tmp_path: Path, chromium_path):
    port = free_port()
    command = [sys.executable, "-m", "grid.cli", "up", "--port", str(free_port()), "--miner-port", str(free_port())]
    process = subprocess.Popen(
        [*command, "--dashboard-port", str(port)],
        env={**os.environ, "GRID_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        url, printed_port, username, password = read_until(process, DASHBOARD_LINE, timeout=90).groups()
        assert int(printed_port) == port and username == "admin"
        assert (tmp_path / "validator-admin.txt").read_text().strip() == password
        page.goto(url + "/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Overview")
        expect(page.locator("#live-state")).to_have_attribute("data-state", "open")
        page.shot("overview")
        page.goto(url + "/admin/")
        expect(page.locator("#site-name")).to_contain_text("Gridmarket validator")
        expect(page.locator("#content-main")).to_contain_text("Blacklist entries")
        page.shot("admin")
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # `grid up` stops its grid on SIGTERM
        try:
            assert process.wait(30) == 0
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
