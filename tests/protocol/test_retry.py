"""Reconnect delays as a pure generator (protocol/retry.py); nothing here sleeps."""

from __future__ import annotations

import itertools

import pytest

from protocol.retry import backoff


def take(n: int, **options: float) -> list[float]:
    return list(itertools.islice(backoff(**options), n))


def test_delays_without_jitter_double_from_the_initial_delay_up_to_the_maximum() -> None:
    """With no jitter the delays are initial × factor**n, then the maximum forever."""
    assert take(8, initial=0.05, maximum=1.0, factor=2.0, jitter=0.0) == pytest.approx(
        [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    )


def test_default_delays_start_small_and_settle_at_five_seconds() -> None:
    """The defaults start at 50 ms and settle at 5 s (before jitter)."""
    delays = take(20, jitter=0.0)
    assert delays[0] == pytest.approx(0.05)
    assert delays[-1] == pytest.approx(5.0)
    assert max(delays) == pytest.approx(5.0)


def test_delays_grow_until_capped() -> None:
    """Without jitter every delay is at least the previous one, strictly until the cap."""
    delays = take(30, initial=0.01, maximum=3.0, factor=1.5, jitter=0.0)
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays))
    uncapped = [d for d in delays if d < 3.0]
    assert all(later > earlier for earlier, later in itertools.pairwise(uncapped))
    assert delays[-5:] == pytest.approx([3.0] * 5)


def test_nominal_delay_never_exceeds_the_maximum() -> None:
    """Without jitter no delay is above the maximum."""
    assert all(d <= 2.0 for d in take(10, initial=0.5, maximum=2.0, jitter=0.0))


def test_initial_delay_above_the_maximum_is_capped_too() -> None:
    """The cap applies from the first delay on."""
    assert take(3, initial=10.0, maximum=2.0, jitter=0.0) == pytest.approx([2.0, 2.0, 2.0])


def test_jitter_stays_within_plus_or_minus_its_fraction_of_each_nominal_delay() -> None:
    """Each delay is within ±jitter of its nominal value, so successive delays still grow on average."""
    jitter = 0.2
    for _ in range(50):
        delays = take(12, initial=0.05, maximum=5.0, factor=2.0, jitter=jitter)
        nominal = [min(0.05 * 2.0**n, 5.0) for n in range(12)]
        for delay, expected in zip(delays, nominal, strict=True):
            assert expected * (1 - jitter) <= delay <= expected * (1 + jitter)


def test_jitter_actually_varies_the_delays() -> None:
    """Two clients reconnecting at once do not wait exactly the same time."""
    assert len({round(next(backoff(jitter=0.2)), 12) for _ in range(20)}) > 1


def test_each_generator_starts_again_from_the_initial_delay() -> None:
    """A new generator (after a successful connection) restarts at the initial delay."""
    first = backoff(jitter=0.0)
    for _ in range(5):
        next(first)
    assert next(backoff(jitter=0.0)) == pytest.approx(0.05)
