"""Every dashboard page: behind the login, rendered from the validator's tables."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.validator.dashboard import data

pytestmark = pytest.mark.django_db

MINER = "a" * 64
JOB = "job-" + "1" * 28


def page_urls() -> list[str]:
    return [
        reverse("dashboard:overview"),
        reverse("dashboard:jobs"),
        reverse("dashboard:job", args=[JOB]),
        reverse("dashboard:miners"),
        reverse("dashboard:miner", args=[MINER]),
        reverse("dashboard:blacklist"),
        reverse("dashboard:routing"),
        reverse("dashboard:scores"),
        reverse("dashboard:live-events"),
        reverse("dashboard:charts"),
        reverse("admin:index"),
    ]


def test_every_page_sends_anonymous_visitors_to_the_login():
    client = Client()
    for url in page_urls():
        response = client.get(url)
        assert response.status_code == 302, url
        login = "/admin/login/" if url.startswith("/admin/") else reverse("dashboard:login")
        assert response["Location"].startswith(login + "?next="), url


def test_the_login_page_needs_no_login_and_signs_the_operator_in(operator):
    client = Client(enforce_csrf_checks=True)
    page = client.get(reverse("dashboard:login"))
    assert page.status_code == 200
    assert b'name="password"' in page.content
    token = page.cookies["grid_validator_csrftoken"].value
    wrong = client.post(
        reverse("dashboard:login"), {"username": "operator", "password": "nope", "csrfmiddlewaretoken": token}
    )
    assert wrong.status_code == 200 and b"didn't match" in wrong.content
    right = client.post(
        reverse("dashboard:login"), {"username": "operator", "password": "correct horse", "csrfmiddlewaretoken": token}
    )
    assert right.status_code == 302 and right["Location"] == reverse("dashboard:overview")
    assert client.get(reverse("dashboard:overview")).status_code == 200


def test_static_files_are_served_without_a_login():
    client = Client()
    response = client.get("/static/dashboard/live.js")
    assert response.status_code == 200 and b"EventSource" in response.content
    assert response["Content-Type"] == "text/javascript"
    again = client.get("/static/dashboard/live.js", headers={"If-Modified-Since": response["Last-Modified"]})
    assert again.status_code == 304
    assert client.get("/static/admin/css/base.css").status_code == 200
    assert client.get("/static/dashboard/nothing.js").status_code == 404
    assert client.get("/favicon.ico")["Location"] == "/static/dashboard/favicon.svg"  # the admin's pages ask for it
    assert client.get("/static/dashboard/favicon.svg")["Content-Type"] == "image/svg+xml"
    assert client.get("/static/../../settings.py").status_code in (400, 404)


def test_the_overview_counts_jobs_lists_those_in_flight_and_draws_both_charts(browser):
    miner = data.miner(MINER)
    data.job("completed", miner.hotkey, statuses=["received", "accepted", "completed"])
    data.job("failed", miner.hotkey, statuses=["received", "accepted", "failed"], failure={"reason": "timeout"})
    # The connector sets a job's status when it ends; until then its latest event tells.
    running = data.job("received", miner.hotkey, statuses=["received", "accepted"])
    response = browser.get(reverse("dashboard:overview"))
    assert response.status_code == 200
    html = response.content.decode()
    counts = dict(response.context["counts"])
    assert counts == {"in_flight": 1, "completed": 1, "failed": 1, "infra_failed": 0, "rejected": 0, "cancelled": 0}
    [shown] = response.context["in_flight"]
    assert (shown.job_id, shown.current_status, shown.last_miner) == (running.job_id, "accepted", MINER)
    assert f'data-job="{running.job_id}" data-status="accepted"' in html
    stream = re.search(r'data-stream="([^"]+)"', html).group(1)
    assert stream == f"{reverse('dashboard:live-events')}?after={response.context['after']}"
    per_status, per_miner = response.context["charts"]
    assert per_status.total == 5  # 3 received + 1 completed + 1 failed
    assert per_miner.total == 3 and per_miner.series[0].key == MINER
    assert html.count('class="bar"') >= 3  # completed, failed, and the miner's accepted attempts
    assert html.count('<svg class="chart"') == 2 and "<polyline" in html
    assert "Content-Security-Policy" in response.headers


def test_the_overview_chart_window_can_be_chosen(browser):
    response = browser.get(reverse("dashboard:overview") + "?window=24h")
    assert response.context["window"] == "24h"
    assert response.context["charts"][0].bucket_s == 24 * 3600 / 30
    assert browser.get(reverse("dashboard:overview") + "?window=bogus").context["window"] == "1h"


def test_the_charts_alone_follow_the_events_the_page_was_drawn_without(browser):
    page = browser.get(reverse("dashboard:overview") + "?window=6h").content.decode()
    assert re.search(r'data-refresh="([^"]+)"', page).group(1) == reverse("dashboard:charts") + "?window=6h"
    assert '<li data-series="completed">' in page and '<span class="muted count">0</span>' in page
    data.job("completed", MINER, statuses=["received", "accepted", "completed"])  # after the page was drawn
    fragment = browser.get(reverse("dashboard:charts") + "?window=6h")
    assert fragment.status_code == 200 and "Content-Security-Policy" in fragment.headers
    html = fragment.content.decode()
    assert html.count('<svg class="chart"') == 2 and "<html" not in html
    completed = re.search(r'<li data-series="completed">.*?<span class="muted count">(\d+)</span>', html).group(1)
    assert completed == "1"
    assert 'data-series="received"' in html and html.count('class="bar"') >= 2


def test_jobs_are_filtered_by_status_and_miner_and_paginated(browser):
    other = data.hotkey()
    done = data.job("completed", MINER)
    data.job("failed", other)
    for _ in range(55):
        data.job("received")
    by_status = browser.get(reverse("dashboard:jobs"), {"status": "completed"})
    assert [job.job_id for job in by_status.context["page"]] == [done.job_id]
    by_miner = browser.get(reverse("dashboard:jobs"), {"miner": MINER[:10]})
    assert [job.job_id for job in by_miner.context["page"]] == [done.job_id]
    running = data.job("received", MINER, statuses=["received", "accepted", "executor_ready"])
    by_progress = browser.get(reverse("dashboard:jobs"), {"status": "executor_ready"})
    assert [job.job_id for job in by_progress.context["page"]] == [running.job_id]
    in_flight = browser.get(reverse("dashboard:jobs"), {"status": "in_flight"})
    assert in_flight.context["page"].paginator.count == 56
    first = browser.get(reverse("dashboard:jobs"))
    assert len(first.context["page"]) == 50 and first.context["page"].paginator.count == 58
    assert b"page=2" in first.content
    assert len(browser.get(reverse("dashboard:jobs"), {"page": 2}).context["page"]) == 8


def test_a_job_shows_its_status_history_with_timings_failure_routing_and_receipts(browser):
    blacklisted = data.hotkey()
    failure = {"reason": "nonzero_exit", "stage": "execution", "message": "exit 3", "stderr_tail": "Traceback…"}
    job = data.job(
        "failed",
        MINER,
        statuses=["received", "accepted", "executor_ready", "failed"],
        start=1000.0,
        step=1.5,
        failure=failure,
        key=JOB,
    )
    data.decision(JOB, MINER, [blacklisted])
    data.receipt(JOB, MINER, "accepted")
    data.receipt(JOB, MINER, "finished")
    response = browser.get(reverse("dashboard:job", args=[job.job_id]))
    assert response.status_code == 200
    html = response.content.decode()
    steps = response.context["history"]
    assert [step.event.status for step in steps] == ["received", "accepted", "executor_ready", "failed"]
    assert [step.since_previous for step in steps] == [None, 1.5, 1.5, 1.5]
    assert steps[-1].since_start == 4.5
    assert "+1.5 s" in html and "4.5 s" in html
    assert "nonzero_exit" in html and "Traceback…" in html
    assert "weighted_choice" in html and "blacklisted" in html and blacklisted[:12] in html
    assert html.count("<td>finished</td>") == 1 and html.count("<td>accepted</td>") == 1


def test_an_unknown_job_is_not_found(browser):
    assert browser.get(reverse("dashboard:job", args=["nope"])).status_code == 404


def test_miners_show_manifest_score_incidents_and_blacklisting(browser):
    good, bad = data.miner("b" * 64), data.miner("c" * 64, trusted=True)
    data.incident(bad.hotkey)
    data.incident(bad.hotkey)
    data.blacklisted(bad.hotkey, reason="forged outputs")
    data.scores({good.hotkey: {"cpu.small": 3.0}})
    response = browser.get(reverse("dashboard:miners"))
    rows = {row.hotkey: row for row in response.context["rows"]}
    assert rows[good.hotkey].scores == {"cpu.small": 3.0} and rows[good.hotkey].blacklisted is None
    assert rows[bad.hotkey].incidents == 2 and rows[bad.hotkey].recent_incidents == 2
    assert rows[bad.hotkey].blacklisted.reason == "forged outputs"
    assert rows[good.hotkey].classes == [{"name": "cpu.small", "free": 2, "total": 4, "spec": "cpu=1, memory_mb=512"}]
    html = response.content.decode()
    assert "forged outputs" in html and "cpu=1, memory_mb=512" in html and "trusted" in html


def test_a_miner_page_shows_its_record_and_the_blacklist_form(browser):
    data.miner(MINER)
    data.incident(MINER, "lost the executor", job=JOB)
    data.job("completed", MINER, key=JOB)
    data.receipt(JOB, MINER)
    data.blacklisted(MINER, "old news", seconds=-10)  # expired
    response = browser.get(reverse("dashboard:miner", args=[MINER]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "lost the executor" in html and "old news" in html and JOB[:12] in html
    assert response.context["active"] == []
    assert reverse("dashboard:miner-blacklist", args=[MINER]) in html
    assert reverse("dashboard:miner-lift", args=[MINER]) not in html


def test_a_miner_only_seen_in_incidents_has_a_page_and_an_unknown_one_is_not_found(browser):
    stranger = data.hotkey()
    data.incident(stranger)
    assert browser.get(reverse("dashboard:miner", args=[stranger])).status_code == 200
    assert browser.get(reverse("dashboard:miner", args=[data.hotkey()])).status_code == 404


def test_routing_decisions_are_listed_and_filtered(browser):
    data.decision(JOB, MINER, [])
    data.decision("other-job", "d" * 64, [MINER])
    everything = browser.get(reverse("dashboard:routing"))
    assert len(everything.context["page"]) == 2
    only = browser.get(reverse("dashboard:routing"), {"job": JOB})
    assert [decision.job_id for decision in only.context["page"]] == [JOB]
    chosen = browser.get(reverse("dashboard:routing"), {"miner": "ddd"})
    assert [decision.job_id for decision in chosen.context["page"]] == ["other-job"]


def test_scores_show_the_latest_sheet_by_miner_and_class(browser):
    assert b"No score sheet published yet" in browser.get(reverse("dashboard:scores")).content
    data.scores({MINER: {"cpu.small": 1.0}})
    data.scores({MINER: {"cpu.small": 2.0, "gpu.24gb": 1.0}, "e" * 64: {"cpu.small": 0.5}})
    response = browser.get(reverse("dashboard:scores"))
    assert response.context["classes"] == ["cpu.small", "gpu.24gb"]
    assert response.context["rows"][0] == (MINER, [2.0, 1.0], 3.0)
    assert len(response.context["history"]) == 2


def test_admin_lists_every_validator_table(operator):
    operator.is_staff = operator.is_superuser = True
    operator.save()
    client = Client()
    client.force_login(operator)
    index = client.get(reverse("admin:index")).content.decode()
    for model in (
        "validatorjob",
        "jobevent",
        "minerrecord",
        "routingdecision",
        "receiptrecord",
        "incident",
        "blacklistentry",
        "publishedscores",
    ):
        assert f"/admin/validator/{model}/" in index
        assert client.get(f"/admin/validator/{model}/").status_code == 200, model
