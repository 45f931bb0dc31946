"""protocol/ratelimit.py: buckets, keyed limits in bounded memory, connection counts, frame gates.

Time is a number handed in (``now=``) or a fake clock: nothing here sleeps.
"""

from __future__ import annotations

import secrets

import pytest

from protocol.ratelimit import Admission, ConnectionLimiter, FrameGate, FrameVerdict, RateLimiter, TokenBucket


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- TokenBucket -----------------------------------------------------------------------------------


def test_a_bucket_starts_full_and_allows_its_burst_at_once() -> None:
    bucket = TokenBucket(rate=2, burst=5, now=0.0)
    assert [bucket.take(now=0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(now=0.0) == pytest.approx(0.5)


def test_a_refused_take_says_how_long_to_wait_and_takes_nothing() -> None:
    bucket = TokenBucket(rate=4, burst=1, now=0.0)
    assert bucket.take(now=0.0) == 0.0
    assert bucket.take(now=0.1) == pytest.approx(0.15)
    assert bucket.take(now=0.1) == pytest.approx(0.15)  # the refusal did not cost anything
    assert bucket.take(now=0.25) == 0.0


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    for _ in range(3):
        bucket.take(now=0.0)
    assert not bucket.is_full(now=0.2)
    assert bucket.tokens == pytest.approx(2.0)
    assert bucket.is_full(now=100.0)
    assert bucket.tokens == 3.0


def test_a_take_costing_more_than_one_token() -> None:
    bucket = TokenBucket(rate=1, burst=10, now=0.0)
    assert bucket.take(cost=8, now=0.0) == 0.0
    assert bucket.take(cost=4, now=0.0) == pytest.approx(2.0)


def test_a_bucket_uses_its_clock_when_no_time_is_given() -> None:
    clock = FakeClock(50.0)
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(1.0)
    clock.now += 1.0
    assert bucket.take() == 0.0


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    bucket = TokenBucket(rate=1, burst=1, now=10.0)
    bucket.take(now=10.0)
    assert bucket.take(now=5.0) == pytest.approx(1.0)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 5), (float("nan"), 1)])
def test_a_bucket_needs_a_positive_rate_and_burst(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="positive rate and burst"):
        TokenBucket(rate, burst)


def test_a_bucket_repr() -> None:
    assert repr(TokenBucket(rate=5, burst=10, now=0.0)) == "<TokenBucket 10.0/10 at 5/s>"


# -- RateLimiter -----------------------------------------------------------------------------------


def test_each_key_has_its_own_bucket() -> None:
    limiter = RateLimiter(rate=1, burst=2, clock=FakeClock())
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert limiter.take("b") == 0.0


def test_idle_keys_are_forgotten_once_their_bucket_has_refilled() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=10, clock=clock)
    for index in range(50):
        limiter.take(f"key-{index}", cost=10)
    assert len(limiter) == 50
    clock.now += 0.5  # half refilled: still remembered (forgetting would hand out a full burst)
    assert limiter.prune() == 0
    clock.now += 0.6
    assert limiter.prune() == 50
    assert len(limiter) == 0


def test_busy_traffic_forgets_idle_keys_as_it_goes() -> None:
    """No sweeper needed: each call forgets a couple of the oldest keys if they are idle."""
    clock = FakeClock()
    limiter = RateLimiter(rate=100, burst=100, clock=clock)
    for index in range(20):
        limiter.take(f"old-{index}")
    clock.now += 5.0
    for _ in range(10):
        limiter.take("busy")
    assert len(limiter) == 1


def test_a_key_cycling_attacker_cannot_grow_the_table_past_max_keys() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1, burst=5, max_keys=100, clock=clock)
    for _ in range(10_000):
        limiter.take(secrets.token_hex(32))
        clock.now += 0.0001
    assert len(limiter) == 100


def test_when_full_of_busy_keys_the_least_recently_seen_goes() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1, burst=2, max_keys=2, clock=clock)
    limiter.take("a")
    limiter.take("b")
    limiter.take("a")  # a is now the most recently seen
    limiter.take("c")  # evicts b
    assert limiter.take("a") > 0.0  # a kept its state: its two tokens are spent
    assert limiter.take("b") == 0.0  # b starts over with a full bucket


def test_an_idle_key_is_evicted_before_a_busy_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1, burst=1, max_keys=2, clock=clock)
    limiter.take("idle")
    clock.now += 5.0
    limiter.take("busy")
    limiter.take("new")
    assert limiter.take("busy") > 0.0


@pytest.mark.parametrize("max_keys", [0, -1])
def test_a_limiter_needs_room_for_a_key(max_keys: int) -> None:
    with pytest.raises(ValueError, match="max_keys"):
        RateLimiter(1, 1, max_keys=max_keys)


def test_a_limiter_repr() -> None:
    limiter = RateLimiter(rate=500, burst=1000, max_keys=10, clock=FakeClock())
    limiter.take("a")
    assert repr(limiter) == "<RateLimiter 500/s burst 1000, 1/10 keys>"


# -- ConnectionLimiter -----------------------------------------------------------------------------


def test_connections_are_admitted_up_to_the_limit_per_key() -> None:
    limiter = ConnectionLimiter(limit=2)
    assert limiter.acquire("a") is Admission.ADMITTED
    assert limiter.acquire("a") is Admission.ADMITTED
    assert limiter.acquire("a") is Admission.KEY_AT_LIMIT
    assert limiter.acquire("b") is Admission.ADMITTED
    assert limiter.count("a") == 2


def test_a_released_connection_makes_room_and_a_key_with_none_open_is_forgotten() -> None:
    limiter = ConnectionLimiter(limit=1)
    limiter.acquire("a")
    limiter.release("a")
    assert len(limiter) == 0
    assert limiter.acquire("a") is Admission.ADMITTED


def test_a_refused_connection_is_not_counted() -> None:
    limiter = ConnectionLimiter(limit=1)
    limiter.acquire("a")
    limiter.acquire("a")
    limiter.release("a")
    assert limiter.count("a") == 0


def test_releasing_an_unknown_key_is_harmless() -> None:
    limiter = ConnectionLimiter(limit=1)
    limiter.release("never")
    assert len(limiter) == 0


def test_the_number_of_keys_with_connections_is_capped() -> None:
    limiter = ConnectionLimiter(limit=5, max_keys=3)
    for key in "abc":
        assert limiter.acquire(key) is Admission.ADMITTED
    assert limiter.acquire("d") is Admission.TOO_MANY_KEYS
    assert limiter.acquire("a") is Admission.ADMITTED  # a key already in is not a new one
    limiter.release("b")
    assert limiter.acquire("d") is Admission.ADMITTED


def test_a_lowered_limit_applies_to_the_next_connection() -> None:
    limiter = ConnectionLimiter(limit=3)
    limiter.acquire("a")
    limiter.acquire("a")
    limiter.limit = 2
    assert limiter.acquire("a") is Admission.KEY_AT_LIMIT


def test_admission_values_are_close_reasons() -> None:
    assert Admission.KEY_AT_LIMIT.value == "too many connections for this hotkey"


@pytest.mark.parametrize(("limit", "max_keys"), [(0, 1), (1, 0)])
def test_a_connection_limiter_needs_positive_limits(limit: int, max_keys: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConnectionLimiter(limit, max_keys=max_keys)


# -- FrameGate -------------------------------------------------------------------------------------


def test_frames_within_the_rate_are_accepted() -> None:
    clock = FakeClock()
    gate = FrameGate(rate=10, burst=5, clock=clock)
    for _ in range(100):
        assert gate.check() is FrameVerdict.ACCEPT
        clock.now += 0.1


def test_the_first_frame_over_the_limit_warns_then_refusals_are_silent_for_a_second() -> None:
    clock = FakeClock()
    gate = FrameGate(rate=1, burst=3, tolerance=100, clock=clock)
    assert [gate.check() for _ in range(3)] == [FrameVerdict.ACCEPT] * 3
    assert gate.check() is FrameVerdict.WARN
    assert gate.check() is FrameVerdict.REFUSE
    clock.now += 0.5
    assert gate.check() is FrameVerdict.REFUSE
    clock.now += 0.6  # a token back, and more than a second since the warning
    assert gate.check() is FrameVerdict.ACCEPT
    assert gate.check() is FrameVerdict.WARN
    assert gate.refused == 4


def test_a_peer_that_keeps_flooding_is_closed_once_its_tolerance_is_spent() -> None:
    clock = FakeClock()
    gate = FrameGate(rate=1, burst=2, tolerance=5, clock=clock)
    verdicts = [gate.check() for _ in range(2 + 5 + 1)]
    assert verdicts[:2] == [FrameVerdict.ACCEPT] * 2
    assert FrameVerdict.CLOSE not in verdicts[2:7]
    assert verdicts[7] is FrameVerdict.CLOSE


def test_tolerance_comes_back_one_strike_a_second() -> None:
    """A burst over the limit now and then is forgiven; it is sustained flooding that closes."""
    clock = FakeClock()
    gate = FrameGate(rate=1, burst=1, tolerance=3, clock=clock)
    for _ in range(20):
        assert gate.check() is FrameVerdict.ACCEPT
        assert gate.check() in (FrameVerdict.WARN, FrameVerdict.REFUSE)  # one refused a second
        clock.now += 1.0


def test_tolerance_defaults_to_the_burst() -> None:
    gate = FrameGate(rate=1, burst=4, clock=FakeClock())
    verdicts = [gate.check() for _ in range(9)]
    assert verdicts.count(FrameVerdict.ACCEPT) == 4
    assert verdicts[-1] is FrameVerdict.CLOSE
    assert FrameVerdict.CLOSE not in verdicts[:-1]


def test_a_gate_repr() -> None:
    assert repr(FrameGate(rate=200, burst=1000, now=0.0)) == "<FrameGate 200/s burst 1000, 0 refused>"
