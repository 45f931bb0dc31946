"""Strings from the network (hotkeys, job ids, messages, reasons) are shown as text, never as markup."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.validator.dashboard import data
from tests.validator.dashboard.data import HOSTILE, HOSTILE_ESCAPED
from validator.dashboard.middleware import POLICY
from validator.models import JobEvent, MinerRecord

pytestmark = pytest.mark.django_db

LINKABLE = '<b id="x">job'  # no slash: it still gets a link, escaped


@pytest.fixture
def hostile_rows():
    """Every table holding a hostile string where the dashboard shows it."""
    miner = data.miner(HOSTILE)  # a "hotkey" with a slash: shown, never linked
    MinerRecord.objects.filter(hotkey=HOSTILE).update(
        address=HOSTILE, manifest={HOSTILE: {"total": 1, "free": 1, "spec": {"cpu": HOSTILE}}}
    )
    failure = {"reason": HOSTILE, "message": HOSTILE, "stage": "execution", "stdout_tail": HOSTILE}
    data.job("failed", miner.hotkey, statuses=["received", "failed"], failure=failure, key=LINKABLE)
    data.job("accepted", miner.hotkey, statuses=["received", "accepted"], key=HOSTILE)
    JobEvent.objects.filter(job_id=LINKABLE).update(detail={"note": HOSTILE})
    data.decision(LINKABLE, HOSTILE, [HOSTILE])
    data.receipt(LINKABLE, HOSTILE)
    data.incident(HOSTILE, message=HOSTILE, job=LINKABLE)
    data.blacklisted(HOSTILE, reason=HOSTILE, by=HOSTILE)
    data.scores({HOSTILE: {HOSTILE: 1.0}})
    return miner


def pages() -> list[str]:
    return [
        reverse("dashboard:overview"),
        reverse("dashboard:jobs"),
        reverse("dashboard:jobs") + "?miner=" + "%3Cscript%3E",
        reverse("dashboard:job", args=[LINKABLE]),
        reverse("dashboard:miners"),
        reverse("dashboard:blacklist"),
        reverse("dashboard:routing"),
        reverse("dashboard:scores"),
    ]


def test_no_page_renders_a_hostile_string_as_markup(browser, hostile_rows):
    for url in pages():
        response = browser.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert LINKABLE not in html, url
        assert response.headers["Content-Security-Policy"] == POLICY, url


def test_hostile_strings_are_shown_escaped(browser, hostile_rows):
    job = browser.get(reverse("dashboard:job", args=[LINKABLE])).content.decode()
    assert HOSTILE_ESCAPED in job  # the failure's reason, message and stdout tail
    assert "&lt;b id=&quot;x&quot;&gt;job" in job
    blacklist = browser.get(reverse("dashboard:blacklist")).content.decode()
    assert HOSTILE_ESCAPED in blacklist  # the reason, and who blacklisted
    miners = browser.get(reverse("dashboard:miners")).content.decode()
    assert f'title="{HOSTILE_ESCAPED}"' in miners  # the hotkey in full, as an attribute
    assert f"<strong>{HOSTILE_ESCAPED}</strong>" in miners  # a manifest class name


def test_ids_are_linked_url_quoted_or_not_linked_at_all(browser, hostile_rows):
    html = browser.get(reverse("dashboard:jobs")).content.decode()
    assert 'href="/jobs/%3Cb%20id=%22x%22%3Ejob/"' in html
    assert '<span class="job-id" title="&lt;script&gt;' in html  # a slash: no URL can hold it


def test_a_hostile_miner_page_escapes_too(browser):
    key = "<i>miner-no-slash"
    data.miner(key)
    data.incident(key, message=HOSTILE)
    response = browser.get(reverse("dashboard:miner", args=[key]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<i>miner" not in html and "&lt;i&gt;miner-no-slash" in html
    assert HOSTILE_ESCAPED in html
