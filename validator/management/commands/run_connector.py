"""``manage.py run_connector``: the validator's long-running process."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from grid.identity import own_keypair
from validator.connector import Connector


class Command(BaseCommand):
    help = "Keep the connections to the facilitator and the miners up and drive every job received."

    def handle(self, *args: object, **options: object) -> None:
        if not settings.VALIDATOR_MINERS:
            self.stderr.write("warning: GRID_MINERS is empty; every job will be rejected (no miner)")
        try:
            connector = Connector(
                own_keypair(),
                settings.VALIDATOR_FACILITATOR_URL,
                settings.VALIDATOR_FACILITATOR_HOTKEY,
                settings.VALIDATOR_MINERS,
                queue_timeout=settings.VALIDATOR_QUEUE_TIMEOUT_S,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"validator {connector.keypair.hotkey} → {settings.VALIDATOR_FACILITATOR_URL}")
        try:
            asyncio.run(connector.run())
        except KeyboardInterrupt:
            pass
