"""``manage.py run_connector``: the validator's long-running process."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from node.identity import own_keypair
from node.memory import freeze_startup_heap
from node.periodic import start_embedded_beat
from validator.connector import Connector
from validator.registry import get_registry


class Command(BaseCommand):
    help = "Keep the connections to the facilitator and the miners up and drive every job received."

    def handle(self, *args: object, **options: object) -> None:
        try:
            registry = get_registry()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        if registry is not None and settings.VALIDATOR_MINERS:
            self.stderr.write("warning: GRID_MINERS is ignored: the miners are the registry's (GRID_FACILITATOR_API)")
        elif registry is None and not settings.VALIDATOR_MINERS:
            self.stderr.write(
                "warning: neither GRID_FACILITATOR_API nor GRID_MINERS is set; every job will be rejected (no miner)"
            )
        try:
            connector = Connector(
                own_keypair(),
                settings.VALIDATOR_FACILITATOR_URL,
                settings.VALIDATOR_FACILITATOR_HOTKEY,
                settings.VALIDATOR_MINERS,
                queue_timeout=settings.VALIDATOR_QUEUE_TIMEOUT_S,
                registry=registry,
                registry_interval=settings.VALIDATOR_REGISTRY_SYNC_S,
                status_path=settings.VALIDATOR_STATUS_FILE,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"validator {connector.keypair.hotkey} → {settings.VALIDATOR_FACILITATOR_URL}")
        if registry is not None:
            self.stdout.write(f"following the registry of {registry.api_url}")
        start_embedded_beat()
        freeze_startup_heap()
        try:
            asyncio.run(connector.run())
        except KeyboardInterrupt:
            pass
