"""The database registry's tables: one row per neuron, and the version every change advances."""

from __future__ import annotations

import uuid

from django.db import models, transaction

from protocol.registry import Neuron as NeuronInfo
from protocol.registry import Role

__all__ = ["Neuron", "RegistryVersion"]


class RegistryVersion(models.Model):
    """One row: the registry's version, which grows in the same transaction as every change.

    ``epoch`` is new whenever the row is: a database started afresh counts versions again from
    1, and a cache keyed on the version alone would take its snapshots for the old ones.
    """

    version = models.PositiveBigIntegerField(default=0)
    epoch = models.UUIDField(default=uuid.uuid4)

    def __str__(self) -> str:
        return f"registry version {self.version}"

    @classmethod
    def current(cls) -> int:
        return cls.stamp()[1]

    @classmethod
    def stamp(cls) -> tuple[str, int]:
        """``(epoch, version)`` in one query; ``("", 0)`` before the first change."""
        row = cls.objects.filter(pk=1).values_list("epoch", "version").first()
        return (str(row[0]), row[1]) if row is not None else ("", 0)

    @classmethod
    def bump(cls) -> None:
        if not cls.objects.filter(pk=1).update(version=models.F("version") + 1):
            cls.objects.get_or_create(pk=1, defaults={"version": 1})  # the first change ever


class Neuron(models.Model):
    """A validator or a miner: its hotkey, stake, and (miners) the address validators dial."""

    class Roles(models.TextChoices):
        VALIDATOR = Role.VALIDATOR.value
        MINER = Role.MINER.value

    hotkey = models.CharField(max_length=64, unique=True)
    role = models.CharField(max_length=16, choices=Roles.choices)
    stake = models.FloatField(default=0.0)
    address = models.CharField(max_length=512, blank=True, default="")
    active = models.BooleanField(default=True)
    registered_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["role", "hotkey"]

    def __str__(self) -> str:
        return f"{self.role} {self.hotkey[:12]}…{'' if self.active else ' (inactive)'}"

    def save(self, *args: object, **kwargs: object) -> None:
        with transaction.atomic():
            super().save(*args, **kwargs)
            RegistryVersion.bump()

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        with transaction.atomic():
            deleted = super().delete(*args, **kwargs)
            RegistryVersion.bump()
        return deleted

    def to_info(self) -> NeuronInfo:
        return NeuronInfo(
            hotkey=self.hotkey, role=Role(self.role), stake=self.stake, address=self.address, active=self.active
        )
