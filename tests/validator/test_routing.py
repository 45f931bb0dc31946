"""Routing (validator/routing.py) weighted by the in-memory reputation (validator/reputation.py),
one job's Router (the driver's routing policy) and the retry-or-final decision.

The miners are real MinerConnection objects fed by hand (tests/validator/test_driver.py).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import pytest

import validator.routing
from protocol.classes import ClassSpec
from protocol.keys import Keypair
from protocol.messages import ClassCapacity, JobFailure, Manifest
from protocol.spec import ResourceLimits
from protocol.status import FailureReason, InfraFailureReason, JobStatus, RejectReason, Stage
from validator.ledger import NullLedger
from validator.miners import CapacityWatch, MinerConnection
from validator.reputation import INCIDENT_WINDOW_S, Reputation
from validator.routing import AfterFailure, Candidate, Decision, Router, Skip, Why, retry_or_final, route

from .test_driver import VALIDATOR, answer, make_job, make_miner

NOW = 1_800_000_000.0


def skipped(decision: Decision) -> dict[str, str | None]:
    return {candidate.hotkey: candidate.skipped for candidate in decision.candidates}


def with_incidents(hotkey: str, count: int, at: float = NOW - 10) -> Reputation:
    reputation = Reputation()
    for _ in range(count):
        reputation.note_incident(hotkey, at)
    return reputation


# -- reputation ------------------------------------------------------------------------------------


def test_a_clean_miner_weighs_one_and_each_recent_incident_lowers_it() -> None:
    reputation = Reputation()
    assert reputation.weight("m", NOW) == 1.0
    reputation.note_incident("m", NOW - 5)
    assert reputation.weight("m", NOW) == 0.5
    reputation.note_incident("m", NOW - 1)
    reputation.note_incident("m", NOW)
    assert reputation.recent_incidents("m", NOW) == 3
    assert reputation.weight("m", NOW) == 0.25
    assert reputation.weight("other", NOW) == 1.0


def test_incidents_older_than_the_window_no_longer_count() -> None:
    reputation = Reputation(window_s=100.0)
    reputation.note_incident("m", NOW - 101)
    reputation.note_incident("m", NOW - 100)  # exactly at the window's edge: still counted
    reputation.note_incident("m", NOW - 1)
    assert reputation.recent_incidents("m", NOW) == 2
    assert reputation.recent_incidents("m", NOW + 100) == 0
    assert reputation.weight("m", NOW + 100) == 1.0
    assert Reputation().window_s == INCIDENT_WINDOW_S


def test_a_blacklisted_miner_weighs_zero_until_its_blacklisting_ends() -> None:
    reputation = Reputation()
    reputation.note_blacklist("m", NOW + 60, "cross-validation mismatch")
    assert reputation.is_blacklisted("m", NOW)
    assert reputation.weight("m", NOW) == 0.0
    assert not reputation.is_blacklisted("m", NOW + 60)
    assert reputation.weight("m", NOW + 61) == 1.0
    assert reputation.blacklist_reasons["m"] == "cross-validation mismatch"


def test_a_shorter_blacklisting_never_cuts_a_longer_one_short() -> None:
    reputation = Reputation()
    reputation.note_blacklist("m", NOW + 600, "report")
    reputation.note_blacklist("m", NOW + 10, "later but shorter")
    assert reputation.blacklisted_until["m"] == NOW + 600
    assert reputation.blacklist_reasons["m"] == "report"
    reputation.note_blacklist("m", NOW + 900, "longer")
    assert reputation.blacklisted_until["m"] == NOW + 900 and reputation.blacklist_reasons["m"] == "longer"


# -- choosing --------------------------------------------------------------------------------------


async def test_a_miner_with_three_incidents_is_chosen_a_quarter_as_often_as_a_clean_one() -> None:
    capacity = CapacityWatch()
    clean, flaky = await make_miner(capacity), await make_miner(capacity)
    reputation = with_incidents(flaky.hotkey, 3)
    rng = random.Random(1234)
    chosen = Counter(
        route([clean, flaky], "cpu.small", reputation=reputation, now=NOW, rng=rng).chosen.hotkey  # type: ignore[union-attr]
        for _ in range(4000)
    )
    # Expected: 3200 clean, 800 flaky (weights 1 and 1/4); sd ≈ 25.
    assert 650 < chosen[flaky.hotkey] < 950
    assert chosen[clean.hotkey] + chosen[flaky.hotkey] == 4000
    assert 3.0 < chosen[clean.hotkey] / chosen[flaky.hotkey] < 5.5


async def test_equal_miners_share_the_work_evenly() -> None:
    capacity = CapacityWatch()
    miners = [await make_miner(capacity) for _ in range(3)]
    rng = random.Random(7)
    chosen = Counter(route(miners, "cpu.small", now=NOW, rng=rng).chosen.hotkey for _ in range(3000))  # type: ignore[union-attr]
    assert all(800 < chosen[miner.hotkey] < 1200 for miner in miners)


async def test_a_seeded_rng_makes_the_choice_reproducible() -> None:
    capacity = CapacityWatch()
    miners = [await make_miner(capacity) for _ in range(4)]

    def picks(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [route(miners, "cpu.small", now=NOW, rng=rng).chosen.hotkey for _ in range(20)]  # type: ignore[union-attr]

    assert picks(99) == picks(99)


async def test_each_skipped_miner_is_named_or_counted_with_its_reason() -> None:
    capacity = CapacityWatch()
    ok = await make_miner(capacity)
    tried = await make_miner(capacity)
    banned = await make_miner(capacity)
    gone = await make_miner(capacity)
    gone.client.connected.clear()
    gpu_only = await make_miner(capacity, cls="gpu.24gb")
    none_of_class = await make_miner(capacity, total=0, free=0)
    small = await make_miner(capacity)
    await answer(
        small, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1, spec=ClassSpec(cpu=1, memory_mb=256))})
    )
    full = await make_miner(capacity, free=0, total=2)
    reputation = Reputation()
    reputation.note_blacklist(banned.hotkey, NOW + 60, "report")
    miners = [ok, tried, banned, gone, gpu_only, none_of_class, small, full]
    decision = route(
        miners,
        "cpu.small",
        exclude={tried.hotkey},
        limits=ResourceLimits(memory_mb=1024),
        reputation=reputation,
        now=NOW,
    )
    assert decision.chosen is ok
    # Skips worth a look are named miner by miner; a miner without the class, or full, is only counted.
    assert skipped(decision) == {
        ok.hotkey: None,
        tried.hotkey: Skip.TRIED,
        banned.hotkey: Skip.BLACKLISTED,
        gone.hotkey: Skip.NOT_CONNECTED,
        small.hotkey: Skip.TOO_SMALL,
    }
    assert decision.skipped == {
        Skip.TRIED: 1,
        Skip.BLACKLISTED: 1,
        Skip.NOT_CONNECTED: 1,
        Skip.CLASS_NOT_OFFERED: 2,
        Skip.TOO_SMALL: 1,
        Skip.NO_FREE_EXECUTOR: 1,
    }
    weights = {candidate.hotkey: candidate.weight for candidate in decision.candidates}
    assert weights[ok.hotkey] == 1.0
    assert all(weight == 0.0 for hotkey, weight in weights.items() if hotkey != ok.hotkey)
    assert decision.eligible == 1 and decision.reason == "only_candidate"


async def test_a_blacklisting_that_ended_no_longer_skips_the_miner() -> None:
    capacity = CapacityWatch()
    miner = await make_miner(capacity)
    reputation = Reputation()
    reputation.note_blacklist(miner.hotkey, NOW - 1, "served its time")
    decision = route([miner], "cpu.small", reputation=reputation, now=NOW)
    assert decision.chosen is miner and skipped(decision) == {miner.hotkey: None}


async def test_a_pin_narrows_the_choice_to_the_pinned_miner() -> None:
    capacity = CapacityWatch()
    miners = [await make_miner(capacity) for _ in range(3)]
    pinned = miners[1]
    for seed in range(20):
        decision = route(miners, "cpu.small", pinned=pinned.hotkey, now=NOW, rng=random.Random(seed))
        assert decision.chosen is pinned
    assert skipped(decision) == {pinned.hotkey: None}
    assert decision.skipped == {Skip.NOT_PINNED: 2}
    assert decision.reason == "only_candidate"


async def test_a_pinned_miner_that_cannot_take_the_job_gets_nothing_routed_elsewhere() -> None:
    capacity = CapacityWatch()
    free, busy = await make_miner(capacity), await make_miner(capacity, free=0)
    decision = route([free, busy], "cpu.small", pinned=busy.hotkey, now=NOW)
    assert decision.chosen is None and decision.reason == "no_candidate"
    assert decision.skipped == {Skip.NOT_PINNED: 1, Skip.NO_FREE_EXECUTOR: 1}


async def test_a_pinned_but_blacklisted_miner_is_still_skipped() -> None:
    capacity = CapacityWatch()
    miner = await make_miner(capacity)
    reputation = Reputation()
    reputation.note_blacklist(miner.hotkey, NOW + 60, "report")
    decision = route([miner], "cpu.small", pinned=miner.hotkey, reputation=reputation, now=NOW)
    assert decision.chosen is None and skipped(decision) == {miner.hotkey: Skip.BLACKLISTED}


async def test_no_candidate_at_all_gives_no_choice_and_says_so() -> None:
    capacity = CapacityWatch()
    busy = await make_miner(capacity, free=0)
    empty = route([], "cpu.small", now=NOW)
    assert empty.chosen is None and empty.reason == "no_candidate" and empty.skipped == {}
    decision = route([busy], "cpu.small", exclude={busy.hotkey}, now=NOW)
    assert decision.chosen is None
    assert decision.reason == "no_candidate"
    assert decision.candidates == [Candidate(busy.hotkey, 0, 0.0, Skip.TRIED)]
    assert decision.eligible == 0


async def test_the_reason_tells_a_lone_candidate_from_a_weighted_choice() -> None:
    capacity = CapacityWatch()
    a, b = await make_miner(capacity), await make_miner(capacity)
    busy = await make_miner(capacity, free=0)
    assert route([a, busy], "cpu.small", now=NOW).reason == "only_candidate"
    assert route([a, b, busy], "cpu.small", now=NOW).reason == "weighted_choice"


async def test_candidates_serialize_with_free_executors_and_rounded_weights() -> None:
    capacity = CapacityWatch()
    flaky = await make_miner(capacity, free=3, total=4)
    tried = await make_miner(capacity, free=1, total=2)
    decision = route(
        [flaky, tried], "cpu.small", exclude={tried.hotkey}, reputation=with_incidents(flaky.hotkey, 2), now=NOW
    )
    assert [candidate.as_json() for candidate in decision.candidates] == [
        {"hotkey": flaky.hotkey, "free": 3, "weight": 0.3333, "skipped": None},
        {"hotkey": tried.hotkey, "free": 1, "weight": 0.0, "skipped": "tried"},
    ]
    assert decision.record() == [candidate.as_json() for candidate in decision.candidates]
    assert repr(decision) == f"<Decision cpu.small → {flaky.hotkey[:12]} of 2>"
    assert repr(route([tried], "cpu.small", exclude={tried.hotkey}, now=NOW)) == "<Decision cpu.small → None of 1>"


async def test_the_record_keeps_the_chosen_miner_the_best_others_and_every_named_skip() -> None:
    capacity = CapacityWatch()
    miners = [await make_miner(capacity) for _ in range(6)]
    tried = await make_miner(capacity)
    reputation = Reputation()
    for rank, miner in enumerate(miners):
        for _ in range(rank):
            reputation.note_incident(miner.hotkey, NOW - 1)
    decision = route(
        [*miners, tried], "cpu.small", exclude={tried.hotkey}, reputation=reputation, now=NOW, rng=random.Random(3)
    )
    assert decision.chosen is not None
    record = decision.record(eligible_kept=2)
    others = [miner.hotkey for miner in miners if miner is not decision.chosen][:2]  # highest weight first
    assert [row["hotkey"] for row in record] == [decision.chosen.hotkey, *others, tried.hotkey]
    assert record[-1]["skipped"] == "tried"
    assert len(decision.record()) == 7


async def test_a_miner_big_enough_for_the_limits_is_a_candidate() -> None:
    capacity = CapacityWatch()
    roomy = await make_miner(capacity)
    await answer(
        roomy, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1, spec=ClassSpec(cpu=4, memory_mb=8192))})
    )
    decision = route([roomy], "cpu.small", limits=ResourceLimits(cpu=2, memory_mb=4096), now=NOW)
    assert decision.chosen is roomy


def test_route_takes_any_iterable_of_miners() -> None:
    decision = route(iter(()), "cpu.small")
    assert decision.chosen is None and decision.candidates == []


# -- one job's router (the driver's policy) --------------------------------------------------------


class RoutedLedger(NullLedger):
    """Keeps the routing decisions it is told of."""

    def __init__(self) -> None:
        super().__init__()
        self.decisions: list[Decision] = []

    def routed(self, job_id: str, attempt: int, decision: Decision) -> None:
        self.decisions.append(decision)


def router(
    miners: list[MinerConnection], capacity: CapacityWatch, queue_timeout: float = 0.2, **spec: object
) -> tuple[Router, RoutedLedger]:
    ledger = RoutedLedger()
    return Router(make_job(**spec), lambda: miners, ledger, capacity, queue_timeout), ledger


def unconnected() -> MinerConnection:
    """A configured miner that has not connected (yet): no manifest."""
    return MinerConnection(Keypair.generate().hotkey, "ws://127.0.0.1:9/ws/validator/", VALIDATOR, CapacityWatch())


def blacklist(ledger: NullLedger, miner: MinerConnection) -> None:
    ledger.reputation.note_blacklist(miner.hotkey, time.time() + 60, "test")


async def test_pick_records_a_decision_only_when_it_chose_a_miner() -> None:
    capacity = CapacityWatch()
    free, busy = await make_miner(capacity), await make_miner(capacity, free=0)
    routing, ledger = router([free, busy], capacity)
    assert routing.pick(set()) is free
    assert routing.pick({free.hotkey}) is None
    assert routing.pick(set(), record=False) is free
    assert [decision.chosen for decision in ledger.decisions] == [free]


async def test_a_free_miner_is_had_at_once() -> None:
    capacity = CapacityWatch()
    miner = await make_miner(capacity)
    routing, _ = router([miner], capacity)
    assert await asyncio.wait_for(routing.wait_for_miner(set()), 1) is miner
    assert routing.queued_since is not None  # the driver clears it once an attempt is accepted


async def test_the_job_waits_in_line_until_a_manifest_frees_an_executor() -> None:
    capacity = CapacityWatch()
    miner = await make_miner(capacity, free=0)
    routing, _ = router([miner], capacity, queue_timeout=5)
    waiting = asyncio.create_task(routing.wait_for_miner(set()))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await answer(miner, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1)}))
    assert await asyncio.wait_for(waiting, 1) is miner


async def test_a_miner_declined_busy_is_skipped_until_a_manifest_changes() -> None:
    capacity = CapacityWatch()
    miner = await make_miner(capacity)
    routing, _ = router([miner], capacity, queue_timeout=5)
    routing.busy.add(miner.hotkey)
    waiting = asyncio.create_task(routing.wait_for_miner(set()))
    await asyncio.sleep(0.1)
    assert not waiting.done(), "a miner that said busy is not asked again on the same manifest"
    await answer(miner, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1)}))
    assert await asyncio.wait_for(waiting, 1) is miner
    assert routing.busy == set()


async def test_the_wait_ends_at_the_queue_timeout_with_the_decision_recorded() -> None:
    capacity = CapacityWatch()
    busy = await make_miner(capacity, free=0)
    routing, ledger = router([busy], capacity, queue_timeout=0.2)
    assert await asyncio.wait_for(routing.wait_for_miner(set()), 2) is None
    [decision] = ledger.decisions
    assert decision.chosen is None and decision.skipped == {Skip.NO_FREE_EXECUTOR: 1}


async def test_with_no_possible_miner_the_wait_ends_at_once() -> None:
    capacity = CapacityWatch()
    tried, other_class = await make_miner(capacity), await make_miner(capacity, cls="gpu.24gb")
    pinned_elsewhere = await make_miner(capacity)
    routing, ledger = router([tried, other_class, pinned_elsewhere], capacity, queue_timeout=30)
    routing.job.pinned_miner = tried.hotkey
    assert await asyncio.wait_for(routing.wait_for_miner({tried.hotkey}), 1) is None
    assert len(ledger.decisions) == 1


async def test_an_unconnected_miner_is_waited_for_within_the_grace_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validator.routing, "MINER_GRACE_S", 0.3)
    capacity = CapacityWatch()
    routing, ledger = router([unconnected()], capacity, queue_timeout=30)
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(routing.wait_for_miner(set()), 3) is None
    assert 0.25 <= asyncio.get_running_loop().time() - started < 2
    assert ledger.decisions[0].skipped == {Skip.NOT_CONNECTED: 1}


async def test_another_miner_could_run_it_unless_tried_blacklisted_unpinned_or_without_the_class() -> None:
    capacity = CapacityWatch()
    tried, busy = await make_miner(capacity), await make_miner(capacity, free=0)
    routing, ledger = router([tried, busy], capacity)
    assert routing.could_run({tried.hotkey}), "a busy miner may free an executor"
    blacklist(ledger, busy)
    assert not routing.could_run({tried.hotkey})
    routing, _ = router([tried, await make_miner(capacity, cls="gpu.24gb")], capacity)
    assert not routing.could_run({tried.hotkey})
    other = await make_miner(capacity)
    routing, _ = router([tried, other], capacity)
    routing.job.pinned_miner = tried.hotkey
    assert not routing.could_run({tried.hotkey}), "the pinned miner was tried: no other may take it"


async def test_a_disconnected_miner_could_run_a_retry_it_may_be_restarting() -> None:
    capacity = CapacityWatch()
    tried = await make_miner(capacity)
    routing, _ = router([tried, unconnected()], capacity)
    assert routing.could_run({tried.hotkey})


async def test_the_rejection_says_why_no_miner_took_the_job() -> None:
    capacity = CapacityWatch()
    busy = await make_miner(capacity, free=0)
    routing, ledger = router([busy], capacity, queue_timeout=7)
    busy_failure = routing.rejection()
    assert (busy_failure.reason, busy_failure.stage, busy_failure.reported_by) == (
        RejectReason.BUSY,
        Stage.RESERVATION,
        "validator",
    )
    assert busy_failure.message == "no connected miner had a free cpu.small executor within 7s"
    ports = routing.rejection(RejectReason.NO_STREAMING_PORT, "every port taken")
    assert (ports.reason, ports.message) == (
        RejectReason.NO_STREAMING_PORT,
        "no miner had a free streaming port (every port taken)",
    )
    assert routing.rejection(RejectReason.UNKNOWN_EXECUTOR_CLASS, "x").reason == RejectReason.BUSY
    blacklist(ledger, busy)
    blacklisted = routing.rejection(RejectReason.NO_STREAMING_PORT, "every port taken")
    assert (blacklisted.reason, blacklisted.message) == (
        RejectReason.NO_MINER,
        "every connected miner offering cpu.small is blacklisted",
    )


async def test_the_rejection_names_limits_that_fit_no_executor_and_a_class_nobody_offers() -> None:
    capacity = CapacityWatch()
    small = await make_miner(capacity)
    await answer(
        small, Manifest(classes={"cpu.small": ClassCapacity(total=1, free=1, spec=ClassSpec(cpu=1, memory_mb=512))})
    )
    routing, _ = router([small], capacity, limits=ResourceLimits(cpu=4))
    too_big = routing.rejection()
    assert too_big.reason == RejectReason.LIMITS_EXCEED_CLASS
    assert too_big.message.startswith("the job's limits do not fit a cpu.small executor (")
    routing, _ = router([await make_miner(capacity, cls="gpu.24gb"), unconnected()], capacity)
    nobody = routing.rejection()
    assert nobody.reason == RejectReason.NO_MINER
    assert nobody.message == "no connected miner had a free cpu.small executor"


# -- retry or final --------------------------------------------------------------------------------

GRID_FAULT = JobFailure(reason=InfraFailureReason.STAGE_TIMEOUT, message="slow", stage=Stage.EXECUTION)
JOB_FAULT = JobFailure(reason=FailureReason.NONZERO_EXIT, message="exit 1", stage=Stage.EXECUTION)


def test_a_grid_fault_with_an_attempt_left_and_another_miner_is_retried() -> None:
    after = retry_or_final(GRID_FAULT, infra=True, attempt=1, max_attempts=2, elsewhere=True)
    assert after == AfterFailure(retry=True, status=JobStatus.INFRA_FAILED, reason=Why.GRID_FAULT)


def test_the_jobs_own_failure_is_final_whatever_is_left() -> None:
    after = retry_or_final(JOB_FAULT, infra=False, attempt=1, max_attempts=10, elsewhere=True)
    assert after == AfterFailure(retry=False, status=JobStatus.FAILED, reason=Why.JOB_FAILED)


def test_the_last_attempt_ends_the_job_infra_failed() -> None:
    for attempt in (2, 3):  # the last one, and past it (a resumed job whose spec allows fewer)
        after = retry_or_final(GRID_FAULT, infra=True, attempt=attempt, max_attempts=2, elsewhere=True)
        assert after == AfterFailure(retry=False, status=JobStatus.INFRA_FAILED, reason=Why.NO_ATTEMPTS_LEFT)


def test_with_no_other_miner_to_go_to_the_job_ends_infra_failed() -> None:
    after = retry_or_final(GRID_FAULT, infra=True, attempt=1, max_attempts=2, elsewhere=False)
    assert after == AfterFailure(retry=False, status=JobStatus.INFRA_FAILED, reason=Why.NO_OTHER_MINER)


def test_the_attempts_count_before_where_else_it_could_go() -> None:
    after = retry_or_final(GRID_FAULT, infra=True, attempt=2, max_attempts=2, elsewhere=False)
    assert after.reason == Why.NO_ATTEMPTS_LEFT
    assert retry_or_final(GRID_FAULT, infra=True, attempt=1, max_attempts=2).retry, "anywhere, unless told"
