"""This party's own keypair, read lazily from ``settings.GRID_KEY_FILE`` (created on first use)."""

from __future__ import annotations

import functools

from django.conf import settings

from protocol.keys import Keypair

__all__ = ["own_keypair"]


@functools.cache
def own_keypair() -> Keypair:
    return Keypair.load_or_create(settings.GRID_KEY_FILE)
