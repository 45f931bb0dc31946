"""The local admin account ``grid up`` creates on first run, and prints the login of."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

__all__ = ["ADMIN_FILE", "ADMIN_USERNAME", "ensure_admin"]

ADMIN_USERNAME = "admin"
ADMIN_FILE = "validator-admin.txt"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(temporary, path)


def ensure_admin(home: Path, username: str = ADMIN_USERNAME) -> tuple[str, str, bool]:
    """Create the superuser ``username`` with a random password the first time; tell its login.

    The password is kept in ``home / "validator-admin.txt"`` (mode 0600), written before the
    account is created so that a crash in between cannot lose it. An operator who changed the
    password keeps it: the stale file is then not shown.

    Returns:
        ``(username, password, created)``; ``password`` is ``""`` when the file no longer holds
        the account's password.
    """
    path = Path(home) / ADMIN_FILE
    try:
        password = path.read_text().strip()
    except FileNotFoundError:
        password = ""
    users = get_user_model()
    user = users.objects.filter(username=username).first()
    if user is not None:
        return username, password if password and user.check_password(password) else "", False
    if not password:
        password = secrets.token_urlsafe(12)
        _write_private(path, password + "\n")
    with transaction.atomic():
        users.objects.create_superuser(username=username, email="", password=password)
    return username, password, True
