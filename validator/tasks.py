"""The validator's periodic tasks (``GRID_PERIODIC_TASKS``, run by :mod:`node.periodic` or Celery beat)."""

from __future__ import annotations

from celery import shared_task

from validator import registry

__all__ = ["expire_blacklist", "fetch_receipts", "publish_scores", "sync_registry"]


@shared_task(name="validator.tasks.sync_registry")
def sync_registry() -> int | None:
    """Fetch the facilitator's registry (the connector follows it); returns the version now held."""
    snapshot = registry.sync()
    return snapshot.version if snapshot is not None else None


@shared_task(name="validator.tasks.publish_scores")
def publish_scores() -> int:
    """Sign this validator's score sheet; the connector sends it to the facilitator. Returns the miners scored."""
    from django.conf import settings

    from node.identity import own_keypair
    from validator.scoring import publish_scores as publish

    sheet = publish(own_keypair(), settings.VALIDATOR_SCORES_WINDOW_S)
    return len(sheet.scores)


@shared_task(name="validator.tasks.fetch_receipts")
def fetch_receipts() -> int:
    """Read every registered miner's new receipt pages; keep the receipts of this and registered
    validators that verify. Returns how many were new."""
    from validator.receipts_collect import collect_receipts

    return collect_receipts()


@shared_task(name="validator.tasks.expire_blacklist")
def expire_blacklist() -> int:
    """Mark blacklist entries whose time has passed as lifted (``lifted_by="expired"``)."""
    import time

    from django.db.models import F

    from validator.models import BlacklistEntry

    now = time.time()
    return BlacklistEntry.objects.filter(lifted_at__isnull=True, until__lte=now).update(
        lifted_at=F("until"), lifted_by="expired"
    )
