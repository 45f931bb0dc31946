"""Keep a long-running role's memory flat: its start-up objects out of the garbage collector's way."""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap() -> None:
    """Move every object alive now (modules, settings, routes: what start-up built) out of the
    collector's generations, for good.

    CPython runs a full collection only once the objects promoted since the last one reach a
    quarter of those that survived it. Django, Channels and pydantic leave a few hundred thousand
    objects behind at start-up, so a busy process piled up tens of thousands of dead reference
    cycles (frames, exceptions, tasks of finished jobs) between full collections: under
    ``bench/soak.py`` the miners grew by a fifth over ten minutes before levelling off. Frozen,
    the start-up objects are neither counted nor traversed: full collections come often and cost
    little.
    """
    gc.collect()
    gc.freeze()
