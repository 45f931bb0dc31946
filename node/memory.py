"""Keep a long-running role's memory flat: its start-up objects out of the garbage collector's way."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

__all__ = ["YOUNG_COLLECTION_EVERY", "freeze_startup_heap", "release_free_heap"]

YOUNG_COLLECTION_EVERY = 10_000  # allocations between collections of the youngest generation


def freeze_startup_heap() -> None:
    """Move every object alive now (modules, settings, routes: what start-up built) out of the
    collector's generations, for good.

    CPython runs a full collection only once the objects promoted since the last one reach a
    quarter of those that survived it. Django, Channels and pydantic leave tens of thousands of
    objects behind at start-up (~79,000 in a miner), so dead reference cycles of finished jobs
    (frames, exceptions, closed connections) waited long for a full collection. Frozen, the
    start-up objects are neither counted nor traversed. (Its effect on RSS alone was not
    measured: bench/soak.py's growth came down with the compression and connection fixes.)

    The youngest generation is collected every 10,000 allocations rather than 700: a job's
    frames and models are thousands of short-lived containers, nearly all freed by their
    reference counts before a collection could find them; at 700 the collector traversed them a
    few times a job (about 3 % of a busy facilitator's CPU, bench/chain_latency.py).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 20, 20)


def _malloc_trim() -> ctypes._CFuncPtr | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to hand back this way
        return None


_TRIM = _malloc_trim()


def release_free_heap() -> bool:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``); ``False`` where
    the C library has none.

    A role's periodic work (a receipts fetch: pages parsed, verified and stored on the periodic
    thread) frees what it allocated, but glibc keeps the freed pages of that thread's arena, and
    the RSS stayed at each run's high-water mark.
    """
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
