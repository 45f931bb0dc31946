"""``python -m django ensure_admin``: create the dashboard's admin account on first run, print its login."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand

from validator.dashboard.accounts import ADMIN_FILE, ensure_admin


class Command(BaseCommand):
    help = "Create the validator dashboard's superuser 'admin' with a random password if missing; print the login."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print {username, password, created} as JSON")

    def handle(self, *args, **options) -> None:
        username, password, created = ensure_admin(settings.GRID_HOME)
        if options["json"]:
            self.stdout.write(json.dumps({"username": username, "password": password, "created": created}))
        elif password:
            where = settings.GRID_HOME / ADMIN_FILE
            self.stdout.write(f"login {username} / {password}" + (f"  (created; kept in {where})" if created else ""))
        else:
            self.stdout.write(
                f"login {username} (its password was changed; `python -m django changepassword {username}` sets one)"
            )
