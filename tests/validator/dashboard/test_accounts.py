"""The local admin account: created once with a random password kept in GRID_HOME, its login told after."""

from __future__ import annotations

import json
import stat
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from validator.dashboard.accounts import ADMIN_FILE, ensure_admin

pytestmark = pytest.mark.django_db


def test_the_first_run_creates_a_superuser_and_keeps_its_password_private(tmp_path):
    username, password, created = ensure_admin(tmp_path)
    assert (username, created) == ("admin", True) and len(password) >= 16
    user = authenticate(username="admin", password=password)
    assert user is not None and user.is_superuser and user.is_staff
    path = tmp_path / ADMIN_FILE
    assert path.read_text().strip() == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_later_runs_tell_the_same_login_and_create_nothing(tmp_path):
    _, password, _ = ensure_admin(tmp_path)
    assert ensure_admin(tmp_path) == ("admin", password, False)
    assert get_user_model().objects.count() == 1


def test_a_password_the_operator_changed_is_kept_and_not_shown(tmp_path):
    ensure_admin(tmp_path)
    user = get_user_model().objects.get(username="admin")
    user.set_password("mine now")
    user.save()
    assert ensure_admin(tmp_path) == ("admin", "", False)
    assert authenticate(username="admin", password="mine now") is not None


def test_a_password_written_before_a_crash_is_used_for_the_account(tmp_path):
    (tmp_path / ADMIN_FILE).write_text("written-before-the-crash\n")
    assert ensure_admin(tmp_path) == ("admin", "written-before-the-crash", True)


def test_the_command_prints_the_login(tmp_path, settings):
    settings.GRID_HOME = tmp_path
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    password = (tmp_path / ADMIN_FILE).read_text().strip()
    assert out.getvalue().startswith(f"login admin / {password}  (created; kept in {tmp_path / ADMIN_FILE})")
    out = StringIO()
    call_command("ensure_admin", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"username": "admin", "password": password, "created": False}
