"""Rate and connection limits, sans-I/O: decisions only, the caller owns sockets and clocks.

* :class:`TokenBucket`: ``rate`` tokens a second up to ``burst``; :meth:`~TokenBucket.take`
  says how long to wait when they run out.
* :class:`RateLimiter`: one bucket per key (a hotkey, an address), in bounded memory. A bucket
  that has refilled is the same as a new one, so idle keys are forgotten; and at most
  ``max_keys`` are tracked: past that the least recently seen goes, so a peer cycling through
  random keys cannot grow the table (each new key starts with a full bucket either way).
* :class:`ConnectionLimiter`: connections open per key, at most ``limit`` each, and at most
  ``max_keys`` keys with a connection open.
* :class:`FrameGate`: the frames of one websocket connection: a bucket, a rate-limited warning,
  and the point where a peer that keeps flooding is closed.

Every method takes ``now`` (seconds, monotonic); the default is the ``clock`` the object was
made with, so tests drive time by hand and never sleep (STYLE.md, protocol/).
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = [
    "Admission",
    "ConnectionLimiter",
    "FrameGate",
    "FrameVerdict",
    "RateLimiter",
    "TokenBucket",
]

Clock = Callable[[], float]


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; starts full.

    Raises:
        ValueError: ``rate`` or ``burst`` is not positive.
    """

    __slots__ = ("_clock", "burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, *, clock: Clock = time.monotonic, now: float | None = None) -> None:
        if not rate > 0 or not burst > 0:
            raise ValueError(f"a token bucket needs a positive rate and burst, not {rate!r} and {burst!r}")
        self.rate, self.burst, self._clock = float(rate), float(burst), clock
        self.tokens = self.burst
        self.stamp = clock() if now is None else now

    def __repr__(self) -> str:
        return f"<TokenBucket {self.tokens:.1f}/{self.burst:g} at {self.rate:g}/s>"

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, cost: float = 1.0, now: float | None = None) -> float:
        """Take ``cost`` tokens if there are that many.

        Returns:
            ``0.0`` when taken; otherwise the seconds until there will be (nothing is taken).
        """
        self._refill(self._clock() if now is None else now)
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate

    def is_full(self, now: float | None = None) -> bool:
        """Refilled to ``burst``: indistinguishable from a new bucket."""
        self._refill(self._clock() if now is None else now)
        return self.tokens >= self.burst


class RateLimiter:
    """A :class:`TokenBucket` per key, at most ``max_keys`` of them.

    Raises:
        ValueError: ``rate``, ``burst`` or ``max_keys`` is not positive.
    """

    def __init__(self, rate: float, burst: float, *, max_keys: int = 10_000, clock: Clock = time.monotonic) -> None:
        TokenBucket(rate, burst, now=0.0)  # the same checks, once
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys!r}")
        self.rate, self.burst, self.max_keys, self._clock = float(rate), float(burst), max_keys, clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()  # least recently seen first

    def __repr__(self) -> str:
        return f"<RateLimiter {self.rate:g}/s burst {self.burst:g}, {len(self)}/{self.max_keys} keys>"

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, cost: float = 1.0, now: float | None = None) -> float:
        """Take ``cost`` tokens from ``key``'s bucket.

        Returns:
            ``0.0`` when allowed; otherwise the seconds to wait before asking again.
        """
        now = self._clock() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            self._evict(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, clock=self._clock, now=now)
        else:
            self._buckets.move_to_end(key)
        wait = bucket.take(cost, now)
        self._forget_idle(now, limit=2)  # amortised: a couple of the oldest per call
        return wait

    def prune(self, now: float | None = None) -> int:
        """Forget every idle key; return how many were forgotten."""
        return self._forget_idle(self._clock() if now is None else now, limit=None)

    def _forget_idle(self, now: float, limit: int | None) -> int:
        forgotten = 0
        while self._buckets and (limit is None or forgotten < limit):
            key, bucket = next(iter(self._buckets.items()))
            if not bucket.is_full(now):
                break  # the oldest is still busy; younger ones were seen later
            del self._buckets[key]
            forgotten += 1
        return forgotten

    def _evict(self, now: float) -> None:
        if len(self._buckets) < self.max_keys:
            return
        if not self._forget_idle(now, limit=1):
            # Full of busy keys: drop the least recently seen. It starts over with a full
            # bucket if it comes back: the limit loosens for it, memory never grows.
            self._buckets.popitem(last=False)


class Admission(enum.Enum):
    """What :meth:`ConnectionLimiter.acquire` decided."""

    ADMITTED = "admitted"
    KEY_AT_LIMIT = "too many connections for this hotkey"
    TOO_MANY_KEYS = "too many hotkeys connected"


class ConnectionLimiter:
    """Connections open per key: at most ``limit`` each, at most ``max_keys`` keys at once.

    ``limit`` may be changed at any time (it applies to the next :meth:`acquire`).

    Raises:
        ValueError: ``limit`` or ``max_keys`` is not positive.
    """

    def __init__(self, limit: int, *, max_keys: int = 10_000) -> None:
        if limit < 1 or max_keys < 1:
            raise ValueError(f"limit and max_keys must be at least 1, not {limit!r} and {max_keys!r}")
        self.limit, self.max_keys = limit, max_keys
        self._open: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<ConnectionLimiter {self.limit} per key, {len(self._open)}/{self.max_keys} keys>"

    def __len__(self) -> int:
        return len(self._open)

    def count(self, key: str) -> int:
        return self._open.get(key, 0)

    def acquire(self, key: str) -> Admission:
        """Count one more connection for ``key``, if allowed (nothing is counted otherwise)."""
        current = self._open.get(key, 0)
        if current >= self.limit:
            return Admission.KEY_AT_LIMIT
        if current == 0 and len(self._open) >= self.max_keys:
            return Admission.TOO_MANY_KEYS
        self._open[key] = current + 1
        return Admission.ADMITTED

    def release(self, key: str) -> None:
        """One of ``key``'s admitted connections closed."""
        current = self._open.get(key, 0)
        if current <= 1:
            self._open.pop(key, None)
        else:
            self._open[key] = current - 1


class FrameVerdict(enum.Enum):
    """What to do with one incoming frame."""

    ACCEPT = "accept"
    REFUSE = "refuse"  # drop it, say nothing (the peer was told less than a second ago)
    WARN = "warn"  # drop it and answer ``error{code: rate_limited}``
    CLOSE = "close"  # the peer kept flooding: close the connection


class FrameGate:
    """The frames of one connection: ``rate`` a second, bursts up to ``burst``.

    A frame over the limit is refused, and the peer warned at most once every ``warn_every``
    seconds. Refusals are strikes: ``tolerance`` of them are forgiven, one more each second;
    the peer that runs out of forgiveness keeps flooding despite the warnings and is closed.
    ``tolerance`` defaults to ``burst``.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        tolerance: float | None = None,
        warn_every: float = 1.0,
        clock: Clock = time.monotonic,
        now: float | None = None,
    ) -> None:
        now = clock() if now is None else now
        self._clock, self.warn_every = clock, warn_every
        self._frames = TokenBucket(rate, burst, clock=clock, now=now)
        self._strikes = TokenBucket(1.0, burst if tolerance is None else tolerance, clock=clock, now=now)
        self._warned_at: float | None = None
        self.refused = 0

    def __repr__(self) -> str:
        return f"<FrameGate {self._frames.rate:g}/s burst {self._frames.burst:g}, {self.refused} refused>"

    @property
    def rate(self) -> float:
        return self._frames.rate

    def check(self, now: float | None = None) -> FrameVerdict:
        now = self._clock() if now is None else now
        if self._frames.take(1.0, now) == 0.0:
            return FrameVerdict.ACCEPT
        self.refused += 1
        if self._strikes.take(1.0, now) > 0.0:
            return FrameVerdict.CLOSE
        if self._warned_at is None or now - self._warned_at >= self.warn_every:
            self._warned_at = now
            return FrameVerdict.WARN
        return FrameVerdict.REFUSE
