"""The validator dashboard in a real browser, against a real local grid running real jobs.

Log in, watch a job appear in flight and complete (pushed, no reload), check both charts drew
bars, and blacklist the grid's miner and lift it again (last: the connector routes by it).
Every step leaves a screenshot in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import re
import sys

import pytest
from playwright.sync_api import Page, expect

from facilitator_sdk import Client, JobSpec

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SLOW_JOB = "import time; time.sleep(3); print('done')"
DRIVEN = ["accepted", "executor_ready", "volumes_ready", "execution_done", "completed"]  # after "received"


def log_in(page: Page, dashboard) -> None:
    page.goto(f"{dashboard.url}/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    page.fill("input[name=username]", dashboard.username)
    page.fill("input[name=password]", dashboard.password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")


def client(dashboard) -> Client:
    return Client(dashboard.grid.facilitator_url, dashboard.grid.home / "keys" / "client.key")


def test_an_operator_logs_in(page: Page, dashboard):
    page.goto(f"{dashboard.url}/jobs/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/jobs/$"))
    page.fill("input[name=username]", dashboard.username)
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("didn't match")
    page.shot("wrong-password")
    page.fill("input[name=username]", dashboard.username)
    page.fill("input[name=password]", dashboard.password)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{dashboard.url}/jobs/")
    expect(page.locator("h1")).to_have_text("Jobs")
    expect(page.locator("header.top")).to_contain_text(dashboard.username)
    page.shot("signed-in")


def test_a_job_appears_live_and_completes(page: Page, dashboard):
    log_in(page, dashboard)
    expect(page.locator("#live-state")).to_have_attribute("data-state", "open")
    page.shot("before")
    with client(dashboard) as grid_client:
        job = grid_client.create_job(JobSpec(command=[sys.executable, "-c", SLOW_JOB]))
        row = page.locator(f'#inflight tr[data-job="{job.job_id}"]')
        expect(row).to_be_visible()  # pushed: the page was drawn before the job existed
        expect(row.locator(".status")).to_have_text(re.compile("accepted|executor_ready|volumes_ready"))
        expect(row.locator("a.hotkey")).to_have_attribute("title", dashboard.grid.keys["miner"].hotkey)
        page.shot("in-flight")
        job.wait(timeout=60)
    assert job.status == "completed"
    expect(row.locator(".status")).to_have_text("completed")
    expect(row).to_have_class(re.compile(r"\bdone\b"))
    expect(page.locator("[data-tile=in_flight] strong")).to_have_text("0")
    expect(page.locator("[data-tile=completed] strong")).to_have_text("1")
    # The charts were drawn before the job existed; they follow the pushed events too (they once
    # said 0 completed beside a table and a tile that said 1).
    status_chart = page.locator(".chart-box").first
    expect(status_chart.locator('li[data-series="completed"] .count')).to_have_text("1")
    expect(status_chart.locator('li[data-series="received"] .count')).to_have_text("1")
    expect(status_chart.locator("rect.bar")).to_have_count(1)
    assert int(status_chart.locator("svg.chart").get_attribute("data-total")) == 2
    pushed = page.locator(f'#events li[data-job="{job.job_id}"] .status').all_inner_texts()
    assert [status for status in reversed(pushed) if status != "received"] == DRIVEN
    page.shot("completed")
    row.locator("a.job-id").click()
    expect(page.locator("h1")).to_contain_text(job.job_id)
    statuses = page.locator("table.history tbody tr .status").all_inner_texts()
    assert [status for status in statuses if status != "received"] == DRIVEN
    expect(page.locator("article.decision")).to_contain_text("only_candidate")
    page.shot("job-page")


def test_the_charts_render_with_data(page: Page, dashboard):
    with client(dashboard) as grid_client:
        grid_client.run(JobSpec(command=[sys.executable, "-c", "print(1)"]), timeout=60)
    log_in(page, dashboard)
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(2)
    for index in range(2):
        chart = charts.nth(index)
        assert int(chart.get_attribute("data-total")) > 0
        assert chart.locator("rect.bar").count() > 0
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 80
        bar = chart.locator("rect.bar").first.bounding_box()
        assert bar is not None and bar["height"] > 0
    expect(page.locator("ul.legend").first).to_contain_text("completed")
    expect(page.locator("ul.legend").nth(1)).to_contain_text(dashboard.grid.keys["miner"].hotkey[:12])
    page.locator(".charts").scroll_into_view_if_needed()
    page.shot("charts")
    page.click(".windows >> text=15m")
    expect(page).to_have_url(re.compile(r"\?window=15m$"))
    assert int(page.locator("svg.chart").first.get_attribute("data-total")) > 0


def test_an_operator_blacklists_the_miner_and_lifts_it(page: Page, dashboard):
    miner = dashboard.grid.keys["miner"].hotkey
    log_in(page, dashboard)
    page.click("header.top nav >> text=Miners")
    row = page.locator(f'table.miners tr[data-miner="{miner}"]')
    expect(row).to_contain_text("cpu.small")
    page.shot("miners")
    row.locator("a.hotkey").click()
    expect(page.locator("h1")).to_contain_text(miner)
    page.fill("input[name=reason]", "returned <b>forged</b> outputs")
    page.select_option("select[name=duration]", label="6 hours")
    page.click("button.danger")
    expect(page.locator(".messages")).to_contain_text("blacklisted: returned <b>forged</b> outputs")
    expect(page.locator("#blacklist-state")).to_contain_text("yes")
    page.shot("blacklisted")
    page.click("header.top nav >> text=Blacklist")
    entry = page.locator(f'#active-blacklist tr[data-miner="{miner}"]')
    expect(entry).to_contain_text("returned <b>forged</b> outputs")  # shown as text, not markup
    expect(entry).to_contain_text(dashboard.username)
    page.shot("blacklist-page")
    entry.locator("button.lift").click()
    expect(page.locator(".messages")).to_contain_text("Lifted")
    expect(page.locator(f'#active-blacklist tr[data-miner="{miner}"]')).to_have_count(0)
    page.shot("lifted")
