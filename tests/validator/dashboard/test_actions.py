"""Operators blacklist and lift miners with CSRF-protected forms; the rows say who and why."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse

from tests.validator.dashboard import data
from validator.dashboard.forms import PERMANENT_S
from validator.models import BlacklistEntry
from validator.reputation import load_reputation

pytestmark = pytest.mark.django_db

MINER = "b" * 64


def csrf(client: Client, url: str) -> str:
    """The token a browser would post back: the cookie set when the form's page was drawn."""
    assert client.get(url).status_code == 200
    return client.cookies["grid_validator_csrftoken"].value


def test_blacklisting_without_the_csrf_token_is_refused(browser):
    data.miner(MINER)
    response = browser.post(reverse("dashboard:miner-blacklist", args=[MINER]), {"reason": "x", "duration": 3600})
    assert response.status_code == 403
    assert not BlacklistEntry.objects.exists()


def test_an_operator_blacklists_a_miner_from_its_page(browser):
    data.miner(MINER)
    token = csrf(browser, reverse("dashboard:miner", args=[MINER]))
    before = time.time()
    response = browser.post(
        reverse("dashboard:miner-blacklist", args=[MINER]),
        {"reason": "returns garbage", "duration": 86400, "csrfmiddlewaretoken": token},
        follow=True,
    )
    assert response.redirect_chain == [(reverse("dashboard:miner", args=[MINER]), 302)]
    entry = BlacklistEntry.objects.get()
    assert (entry.miner_hotkey, entry.reason, entry.created_by) == (MINER, "returns garbage", "operator")
    assert before <= entry.created_at <= time.time() and entry.until == pytest.approx(entry.created_at + 86400)
    assert entry.lifted_at is None and entry.incident is None
    html = response.content.decode()
    assert "blacklisted: returns garbage" in html  # the message
    assert reverse("dashboard:miner-lift", args=[MINER]) in html
    assert load_reputation().is_blacklisted(MINER)  # what the connector's next reload sees


def test_a_blacklisting_needs_a_reason_and_a_listed_duration(browser):
    data.miner(MINER)
    token = csrf(browser, reverse("dashboard:miner", args=[MINER]))
    url = reverse("dashboard:miner-blacklist", args=[MINER])
    no_reason = browser.post(url, {"reason": "", "duration": 3600, "csrfmiddlewaretoken": token})
    assert no_reason.status_code == 400 and b"This field is required." in no_reason.content
    odd = browser.post(url, {"reason": "x", "duration": 5, "csrfmiddlewaretoken": token})
    assert odd.status_code == 400 and b"Select a valid choice." in odd.content
    assert not BlacklistEntry.objects.exists()


def test_an_unknown_miner_cannot_be_blacklisted_from_a_miner_page(browser):
    token = csrf(browser, reverse("dashboard:blacklist"))
    url = reverse("dashboard:miner-blacklist", args=[MINER])
    response = browser.post(url, {"reason": "x", "duration": 3600, "csrfmiddlewaretoken": token})
    assert response.status_code == 404


def test_lifting_a_miner_ends_its_active_entries(browser):
    data.miner(MINER)
    first, second = data.blacklisted(MINER, "one"), data.blacklisted(MINER, "two", seconds=7200)
    token = csrf(browser, reverse("dashboard:miner", args=[MINER]))
    response = browser.post(reverse("dashboard:miner-lift", args=[MINER]), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    for entry in (first, second):
        entry.refresh_from_db()
        assert entry.lifted_by == "operator" and entry.lifted_at is not None
    assert not load_reputation().is_blacklisted(MINER)


def test_the_blacklist_page_lists_active_entries_and_lifts_one(browser):
    entry = data.blacklisted(MINER, "forged a receipt")
    data.blacklisted("c" * 64, "expired long ago", seconds=-1)
    page = browser.get(reverse("dashboard:blacklist"))
    assert [row.id for row in page.context["active"]] == [entry.id]
    assert [row.reason for row in page.context["past"]] == ["expired long ago"]
    token = browser.cookies["grid_validator_csrftoken"].value
    lift = reverse("dashboard:blacklist-lift", args=[entry.id])
    response = browser.post(lift, {"csrfmiddlewaretoken": token, "next": reverse("dashboard:blacklist")})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:blacklist")
    entry.refresh_from_db()
    assert entry.lifted_by == "operator"
    again = browser.post(lift, {"csrfmiddlewaretoken": token}, follow=True)
    assert b"That entry was lifted already." in again.content


def test_lifting_redirects_only_to_our_own_pages(browser):
    entry = data.blacklisted(MINER)
    token = csrf(browser, reverse("dashboard:blacklist"))
    response = browser.post(
        reverse("dashboard:blacklist-lift", args=[entry.id]),
        {"csrfmiddlewaretoken": token, "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("dashboard:blacklist")


def test_any_hotkey_can_be_blacklisted_from_the_blacklist_page(browser):
    token = csrf(browser, reverse("dashboard:blacklist"))
    url = reverse("dashboard:blacklist")
    bad = browser.post(url, {"hotkey": "not-a-key", "reason": "x", "duration": 3600, "csrfmiddlewaretoken": token})
    assert bad.status_code == 400 and b"64 lowercase hex characters" in bad.content
    response = browser.post(
        url,
        {
            "hotkey": MINER,
            "reason": "seen cheating elsewhere",
            "duration": int(PERMANENT_S),
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 302
    entry = BlacklistEntry.objects.get()
    assert entry.miner_hotkey == MINER and entry.created_by == "operator"
    assert b"until lifted" in browser.get(url).content


def test_actions_only_take_posts(browser):
    data.miner(MINER)
    assert browser.get(reverse("dashboard:miner-blacklist", args=[MINER])).status_code == 405
    assert browser.get(reverse("dashboard:miner-lift", args=[MINER])).status_code == 405
    assert browser.get(reverse("dashboard:blacklist-lift", args=[1])).status_code == 405
