"""Miner scores from finished receipts (validator/scoring.py), signed and stored."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.errors import SignatureError
from protocol.keys import Keypair
from protocol.receipts import ReceiptKind
from protocol.scores import ScoreSheet, verify_scores
from validator.models import BlacklistEntry, Incident, PublishedScores, ReceiptRecord
from validator.reputation import Reputation
from validator.scoring import DEFAULT_WINDOW_S, compute_scores, publish_scores

from .test_driver import VALIDATOR
from .test_ledger import make_receipt

NOW = 1_800_000_000.0
A, B, C = Keypair.generate(), Keypair.generate(), Keypair.generate()
OTHER_VALIDATOR = Keypair.generate()


# -- computing -------------------------------------------------------------------------------------


def test_scores_count_completed_attempts_per_miner_and_class() -> None:
    completed = [("a", "cpu.small"), ("a", "cpu.small"), ("a", "gpu.24gb"), ("b", "cpu.small")]
    assert compute_scores(completed, Reputation(), NOW) == {
        "a": {"cpu.small": 2.0, "gpu.24gb": 1.0},
        "b": {"cpu.small": 1.0},
    }
    assert compute_scores([], Reputation(), NOW) == {}


def test_recent_incidents_divide_a_score_and_old_ones_do_not() -> None:
    reputation = Reputation(window_s=100.0)
    reputation.note_incident("a", NOW - 10)
    reputation.note_incident("a", NOW - 20)
    reputation.note_incident("b", NOW - 500)  # out of the window
    completed = [("a", "cpu.small")] * 3 + [("b", "cpu.small")] * 3
    assert compute_scores(completed, reputation, NOW) == {"a": {"cpu.small": 1.0}, "b": {"cpu.small": 3.0}}
    assert compute_scores([("a", "cpu.small")] * 2, reputation, NOW) == {"a": {"cpu.small": 0.666667}}


def test_a_blacklisted_miner_scores_zero_in_every_class() -> None:
    reputation = Reputation()
    reputation.note_blacklist("a", NOW + 60, "report")
    scores = compute_scores([("a", "cpu.small"), ("a", "gpu.24gb"), ("b", "cpu.small")], reputation, NOW)
    assert scores == {"a": {"cpu.small": 0.0, "gpu.24gb": 0.0}, "b": {"cpu.small": 1.0}}
    reputation.note_blacklist("c", NOW - 1, "over")
    assert compute_scores([("c", "cpu.small")], reputation, NOW) == {"c": {"cpu.small": 1.0}}


# -- publishing ------------------------------------------------------------------------------------


def store(miner: Keypair, job_id: str, *, at: float = NOW - 60, validator: Keypair = VALIDATOR, **fields: Any) -> None:
    """A receipt row as the ledger keeps it once both signatures verified."""
    kind = fields.pop("kind", ReceiptKind.FINISHED)
    receipt = make_receipt(kind, job_id=job_id, validator=validator, miner=miner, at=at, **fields)
    assert ReceiptRecord.objects.keep(receipt)


@pytest.mark.django_db
def test_a_published_sheet_counts_distinct_completed_attempts_in_the_window() -> None:
    store(A, "job-1")
    store(A, "job-2")
    store(A, "job-2", validator=OTHER_VALIDATOR)  # the same attempt, as the other validator signed it
    store(A, "job-2", attempt=2)  # a second attempt of it is a second piece of work
    store(A, "job-3", executor_class="gpu.24gb")
    store(A, "job-4", status="failed")
    store(A, "job-5", kind=ReceiptKind.STARTED)
    store(A, "job-6", kind=ReceiptKind.ACCEPTED)
    store(A, "job-7", at=NOW - DEFAULT_WINDOW_S - 1)  # before the window
    store(A, "job-8", at=NOW + 1)  # after the sheet's time
    store(B, "job-9")
    store(B, "job-10")
    store(C, "job-11")
    Incident.objects.create(miner_hotkey=B.hotkey, kind="infra_failure", at=NOW - 30)
    Incident.objects.create(miner_hotkey=B.hotkey, kind="infra_failure", at=NOW - DEFAULT_WINDOW_S - 30)  # old
    BlacklistEntry.objects.create(miner_hotkey=C.hotkey, reason="report", until=NOW + 60, created_at=NOW - 1)

    sheet = publish_scores(VALIDATOR, now=NOW)
    assert (sheet.validator_hotkey, sheet.at, sheet.window_s) == (VALIDATOR.hotkey, NOW, DEFAULT_WINDOW_S)
    assert sheet.scores == {
        A.hotkey: {"cpu.small": 3.0, "gpu.24gb": 1.0},
        B.hotkey: {"cpu.small": 1.0},
        C.hotkey: {"cpu.small": 0.0},
    }
    verify_scores(sheet, VALIDATOR.hotkey)


@pytest.mark.django_db
def test_a_published_sheet_is_stored_unsent_and_verifies_from_its_row() -> None:
    store(A, "job-1")
    sheet = publish_scores(VALIDATOR, window_s=600.0, now=NOW)
    [row] = PublishedScores.objects.all()
    assert (row.at, row.sent) == (NOW, False)
    stored = ScoreSheet.model_validate(row.sheet)
    assert stored == sheet and stored.window_s == 600.0
    verify_scores(stored, VALIDATOR.hotkey)
    with pytest.raises(SignatureError):
        verify_scores(stored.model_copy(update={"scores": {A.hotkey: {"cpu.small": 99.0}}}), VALIDATOR.hotkey)
    with pytest.raises(SignatureError):
        verify_scores(stored, OTHER_VALIDATOR.hotkey)


@pytest.mark.django_db
def test_the_window_bounds_which_receipts_count() -> None:
    store(A, "job-1", at=NOW - 500)
    store(A, "job-2", at=NOW - 50)
    assert publish_scores(VALIDATOR, window_s=100.0, now=NOW).scores == {A.hotkey: {"cpu.small": 1.0}}
    assert publish_scores(VALIDATOR, window_s=1000.0, now=NOW).scores == {A.hotkey: {"cpu.small": 2.0}}
    assert publish_scores(VALIDATOR, window_s=10.0, now=NOW).scores == {}
    assert PublishedScores.objects.count() == 3
