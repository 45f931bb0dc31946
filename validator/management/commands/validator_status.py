"""``python -m django validator_status``: the validator at a glance, as JSON (``grid validator status`` formats it)."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from validator.overview import overview


class Command(BaseCommand):
    help = "Print the validator's connections, jobs in flight, miners, incidents, blacklist and scores as JSON."

    def handle(self, *args, **options) -> None:
        database = settings.DATABASES["default"]
        if database["ENGINE"].endswith("sqlite3") and not Path(database["NAME"]).exists():
            raise CommandError(f"no validator database at {database['NAME']}: is a validator set up here? (grid up)")
        try:
            report = overview()
        except DatabaseError as exc:
            raise CommandError(f"the validator's database is not ready ({exc}): is a validator set up here?") from exc
        self.stdout.write(json.dumps(report, indent=1))
