"""The facilitator's choice of validator (facilitator/validator_choice.py, DESIGN.md §8)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from facilitator import jobs
from facilitator.models import Job, ValidatorPresence
from facilitator.registry import get_registry
from facilitator.validator_choice import choose_validator
from protocol.registry import Neuron, Role

from .conftest import OTHER_VALIDATOR, VALIDATOR, create_job

A, B, C = "a" * 64, "b" * 64, "c" * 64


def neuron(hotkey: str, stake: float, *, active: bool = True, role: Role = Role.VALIDATOR) -> Neuron:
    return Neuron(hotkey=hotkey, role=role, stake=stake, active=active)


def picks(candidates: list[str], registry: dict[str, Neuron], n: int = 4000) -> Counter[str]:
    rng = random.Random(7)
    return Counter(choose_validator([(h, h) for h in candidates], registry, rng) for _ in range(n))


def test_the_choice_follows_the_stakes() -> None:
    counts = picks([A, B], {A: neuron(A, 3.0), B: neuron(B, 1.0)})
    assert set(counts) == {A, B}
    assert 0.70 < counts[A] / 4000 < 0.80  # 3:1 stake, 75 %


def test_an_unstaked_validator_is_never_picked_beside_a_staked_one() -> None:
    assert picks([A, B, C], {A: neuron(A, 0.0), B: neuron(B, 2.0)}) == Counter({B: 4000})


def test_without_any_stake_the_validators_are_equally_likely() -> None:
    counts = picks([A, B], {A: neuron(A, 0.0)})
    assert 0.45 < counts[A] / 4000 < 0.55


def test_inactive_or_miner_entries_are_never_picked() -> None:
    registry = {A: neuron(A, 5.0, active=False), B: neuron(B, 5.0, role=Role.MINER), C: neuron(C, 0.0)}
    assert picks([A, B, C], registry, n=200) == Counter({C: 200})
    assert choose_validator([(A, A), (B, B)], registry) is None
    assert choose_validator([], {}) is None


@pytest.mark.django_db
def test_dispatch_sends_jobs_to_the_staked_validator_and_none_to_the_deactivated_one() -> None:
    registry = get_registry()
    registry.register(VALIDATOR.hotkey, Role.VALIDATOR, stake=1.0)
    registry.register(OTHER_VALIDATOR.hotkey, Role.VALIDATOR, stake=1.0)
    registry.deactivate(OTHER_VALIDATOR.hotkey)
    ValidatorPresence.objects.create(hotkey=VALIDATOR.hotkey, channel_name="validator-one")
    ValidatorPresence.objects.create(hotkey=OTHER_VALIDATOR.hotkey, channel_name="validator-two")
    for _ in range(20):
        assert jobs.dispatch(create_job()) is True
    assert set(Job.objects.values_list("validator_hotkey", flat=True)) == {VALIDATOR.hotkey}
    registry.deactivate(VALIDATOR.hotkey)
    job = create_job()
    assert jobs.dispatch(job) is False  # both connected, neither active: the job waits
    assert Job.objects.get(id=job.id).validator_hotkey == ""
