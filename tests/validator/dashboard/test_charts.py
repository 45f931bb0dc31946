"""Charts of jobs over time: events counted per bucket in the database, laid out as stacked SVG bars."""

from __future__ import annotations

import pytest

from tests.validator.dashboard import data
from validator.dashboard import charts

pytestmark = pytest.mark.django_db

NOW = 1_699_999_980.0  # a minute boundary: 30 buckets of 60 s end exactly here
WINDOW = 1800.0


def test_window_names_fall_back_to_the_default():
    assert charts.window("6h") == ("6h", 21600.0)
    assert charts.window("<script>") == ("1h", 3600.0)


def test_jobs_per_status_counts_endings_per_bucket_and_received_as_a_line():
    data.event("a", "received", at=NOW - 59)  # last bucket
    data.event("a", "completed", "m", at=NOW - 30)
    data.event("b", "received", at=NOW - 61)  # the one before
    data.event("b", "failed", "m", at=NOW - 61)
    data.event("c", "accepted", "m", at=NOW - 30)  # not an ending: not on this chart
    data.event("d", "completed", "m", at=NOW - WINDOW - 1)  # before the window
    chart = charts.jobs_per_status(WINDOW, now=NOW)
    assert chart.start == NOW - WINDOW and chart.bucket_s == 60 and chart.buckets == 30
    series = {series.key: series.counts for series in chart.series}
    assert series["completed"][-1] == 1 and sum(series["completed"]) == 1
    assert series["failed"][-2] == 1 and sum(series["failed"]) == 1
    assert chart.line.counts[-2:] == [1, 1]
    assert chart.total == 4


def test_bars_stack_within_the_plot_and_carry_a_readable_title():
    for status in ("completed", "completed", "failed"):
        data.event("x", status, "m", at=NOW - 10)
    chart = charts.jobs_per_status(WINDOW, now=NOW)
    completed, failed = chart.bars()
    assert completed.x == failed.x and completed.color != failed.color
    assert failed.y + failed.height == pytest.approx(completed.y, abs=0.2)  # failed sits on completed
    assert completed.y + completed.height == pytest.approx(chart.baseline, abs=0.2)
    assert chart.scale_max == 5 and failed.y >= chart.top
    assert completed.title.startswith("completed: 2 (") and completed.title.endswith(" UTC)")
    assert [value for _, value in chart.y_ticks()] == [0, 2, 5]
    assert len(chart.line_points().split()) == 30


def test_jobs_per_miner_names_the_busiest_and_folds_the_rest():
    miners = [f"{index:02d}" + "f" * 62 for index in range(10)]
    for rank, miner in enumerate(miners):
        for _ in range(10 - rank):
            data.event(f"job-{miner}", "accepted", miner, at=NOW - 100)
    chart = charts.jobs_per_miner(WINDOW, now=NOW)
    assert [series.key for series in chart.series[:8]] == miners[:8]
    assert chart.series[0].label == miners[0][:12] + "…"
    assert chart.series[-1].label == "2 other miners" and chart.series[-1].total == 2 + 1
    assert chart.total == sum(range(1, 11))


def test_an_empty_window_still_draws_an_empty_chart():
    chart = charts.jobs_per_miner(WINDOW, now=NOW)
    assert chart.total == 0 and chart.bars() == [] and chart.buckets == 30
