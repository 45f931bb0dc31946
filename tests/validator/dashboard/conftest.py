"""The validator's site settings swapped into the in-process test settings, and a signed-in operator."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from grid.settings import validator as validator_settings

SITE_SETTINGS = (
    "ROOT_URLCONF",
    "MIDDLEWARE",
    "TEMPLATES",
    "STATIC_URL",
    "LOGIN_URL",
    "LOGIN_REDIRECT_URL",
    "LOGOUT_REDIRECT_URL",
    "SESSION_COOKIE_NAME",
    "CSRF_COOKIE_NAME",
)


@pytest.fixture(autouse=True)
def dashboard_site(settings):
    for name in SITE_SETTINGS:
        setattr(settings, name, getattr(validator_settings, name))
    settings.DASHBOARD_POLL_S = 0.02


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_user("operator", password="correct horse")


@pytest.fixture
def browser(operator) -> Client:
    """A client signed in as ``operator``, with CSRF checks on as in a real browser."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    return client
