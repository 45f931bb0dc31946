"""The miner's receipts (miner/receipts.py): kept once, paged and signed, shown when busy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

import miner.receipts
import miner.relay
from miner.executors.pool import ExecutorPool
from miner.models import MinerReceipt
from miner.receipts import PageRequestError, ReceiptConflict, busy_receipts, page, page_max, store
from node.identity import own_keypair
from protocol.errors import SignatureError
from protocol.messages import JobInitial
from protocol.receipts import Receipt, ReceiptKind, verify_page, verify_receipt
from protocol.spec import new_job_id

from .conftest import OTHER_VALIDATOR, VALIDATOR
from .receipt_helpers import make_receipt

# busy_receipts reads the database on a worker thread: it must see committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


def stored() -> list[Receipt]:
    return [Receipt.model_validate(row.receipt) for row in MinerReceipt.objects.order_by("id")]


# -- store -----------------------------------------------------------------------------------------


def test_a_countersigned_receipt_is_stored_with_its_key() -> None:
    receipt = make_receipt("accepted", validator=VALIDATOR, attempt=2, executor_class="cpu.large")
    assert store(receipt) == receipt
    row = MinerReceipt.objects.get()
    payload = receipt.payload
    assert (row.job_id, row.attempt, row.kind, row.validator_hotkey, row.executor_class, row.at) == (
        payload.job_id,
        2,
        "accepted",
        VALIDATOR.hotkey,
        "cpu.large",
        payload.at,
    )
    assert Receipt.model_validate(row.receipt) == receipt


def test_the_same_receipt_stored_twice_is_one_row() -> None:
    receipt = make_receipt(validator=VALIDATOR)
    store(receipt)
    assert store(receipt) == receipt
    assert stored() == [receipt]


def test_a_different_receipt_under_the_same_key_is_refused_and_the_first_is_kept() -> None:
    first = make_receipt(validator=VALIDATOR)
    store(first)
    job_id = first.payload.job_id
    other = make_receipt(validator=VALIDATOR, job_id=job_id)  # same key, another ``at``
    assert other != first
    with pytest.raises(ReceiptConflict) as caught:
        store(other)
    assert str(caught.value) == f"another started receipt is kept for job {job_id} attempt 1"
    assert caught.value.code == "receipt_conflict"
    assert stored() == [first]


def test_each_kind_attempt_and_validator_of_a_job_is_its_own_receipt() -> None:
    job_id = new_job_id()
    receipts = [
        make_receipt("started", validator=VALIDATOR, job_id=job_id),
        make_receipt("accepted", validator=VALIDATOR, job_id=job_id),
        make_receipt("finished", validator=VALIDATOR, job_id=job_id, status="completed"),
        make_receipt("started", validator=VALIDATOR, job_id=job_id, attempt=2),
        make_receipt("started", validator=OTHER_VALIDATOR, job_id=job_id),
    ]
    for receipt in receipts:
        store(receipt)
    assert stored() == receipts


def test_a_receipt_without_the_miners_signature_is_not_stored() -> None:
    with pytest.raises(ValueError, match=r"^only a countersigned receipt is kept$"):
        store(make_receipt(validator=VALIDATOR, countersigned=False))
    assert not MinerReceipt.objects.exists()


# -- pages -----------------------------------------------------------------------------------------


def test_an_empty_store_gives_an_empty_signed_last_page() -> None:
    first = page(0)
    verify_page(first, own_keypair().hotkey)
    assert (first.cursor, first.next_cursor, first.receipts) == (0, None, [])


def test_pages_follow_the_store_order_from_cursor_to_cursor_and_are_signed() -> None:
    receipts = [make_receipt(validator=VALIDATOR) for _ in range(5)]
    for receipt in receipts:
        store(receipt)
    ids = list(MinerReceipt.objects.order_by("id").values_list("id", flat=True))

    seen, cursor, cursors = [], 0, []
    while True:
        current = page(cursor, 2)
        verify_page(current, own_keypair().hotkey)
        assert current.cursor == cursor and current.miner_hotkey == own_keypair().hotkey
        if current.next_cursor is None:
            assert current.receipts == []
            break
        seen.extend(current.receipts)
        cursors.append(current.next_cursor)
        cursor = current.next_cursor
    assert seen == receipts
    assert cursors == [ids[1], ids[3], ids[4]]
    for receipt in seen:
        verify_receipt(receipt, miner_hotkey=own_keypair().hotkey, validator_hotkey=VALIDATOR.hotkey)


def test_a_page_asked_for_after_the_last_cursor_is_empty() -> None:
    store(make_receipt(validator=VALIDATOR))
    last = MinerReceipt.objects.get().id
    assert page(last).receipts == [] and page(last).next_cursor is None
    assert page(last + 1000).receipts == []


def test_a_page_is_signed_over_its_cursors_and_receipts() -> None:
    store(make_receipt(validator=VALIDATOR))
    signed = page(0)
    for changes in ({"cursor": 1}, {"next_cursor": None}, {"receipts": []}):
        with pytest.raises(SignatureError):
            verify_page(signed.model_copy(update=changes), own_keypair().hotkey)


@pytest.mark.parametrize(
    ("after", "limit", "message"),
    [
        (-1, 10, "after must be a cursor (an integer ≥ 0), not -1"),
        ("3", 10, "after must be a cursor (an integer ≥ 0), not '3'"),
        (True, 10, "after must be a cursor (an integer ≥ 0), not True"),
        (0, 0, "limit must be an integer from 1 to 5000, not 0"),
        (0, -5, "limit must be an integer from 1 to 5000, not -5"),
        (0, 5001, "limit must be an integer from 1 to 5000, not 5001"),
        (0, 2.5, "limit must be an integer from 1 to 5000, not 2.5"),
    ],
)
def test_a_bad_cursor_or_limit_is_refused(after: object, limit: object, message: str) -> None:
    with pytest.raises(PageRequestError) as caught:
        page(after, limit)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_the_page_size_limit_comes_from_the_settings_within_what_a_page_holds() -> None:
    store(make_receipt(validator=VALIDATOR))
    with override_settings(MINER_RECEIPTS_PAGE_MAX=3):
        assert len(page(0, 3).receipts) == 1
        with pytest.raises(PageRequestError, match="from 1 to 3, not 4"):
            page(0, 4)
    with override_settings(MINER_RECEIPTS_PAGE_MAX=50_000):
        assert page_max() == 10_000


# -- busy_receipts ---------------------------------------------------------------------------------


async def _stored_async(make: Callable[[], list[Receipt]]) -> list[Receipt]:
    return await sync_to_async(make)()


@pytest.fixture
def two_classes(new_pool: Callable[..., ExecutorPool], monkeypatch: pytest.MonkeyPatch) -> ExecutorPool:
    pool = new_pool("cpu.small:2:0,cpu.large:1:0")
    monkeypatch.setattr(miner.relay, "_pool", pool)
    return pool


def reserve(pool: ExecutorPool, executor_class: str = "cpu.small", attempt: int = 1) -> str:
    job = JobInitial(job_id=new_job_id(), attempt=attempt, executor_class=executor_class)
    assert pool.reserve(job.job_id, executor_class, "validator-channel", job.encode()) is not None
    return job.job_id


def receipts_of(job_id: str, *kinds: str, attempt: int = 1, executor_class: str = "cpu.small") -> list[Receipt]:
    receipts = [
        make_receipt(kind, validator=VALIDATOR, job_id=job_id, attempt=attempt, executor_class=executor_class)
        for kind in kinds
    ]
    for receipt in receipts:
        store(receipt)
    return receipts


async def test_busy_receipts_are_the_started_and_accepted_receipts_of_the_jobs_holding_the_class(
    two_classes: ExecutorPool,
) -> None:
    first, second = reserve(two_classes), reserve(two_classes)
    expected = await _stored_async(lambda: receipts_of(first, "started", "accepted") + receipts_of(second, "started"))
    shown = await busy_receipts("cpu.small")
    assert shown == expected
    for receipt in shown:
        verify_receipt(receipt, miner_hotkey=own_keypair().hotkey)


async def test_busy_receipts_leave_out_jobs_that_are_over_elsewhere_or_not_held(two_classes: ExecutorPool) -> None:
    running, finished = reserve(two_classes), reserve(two_classes)
    retried = reserve(two_classes, "cpu.large", attempt=2)

    def setup() -> list[Receipt]:
        kept = receipts_of(running, "started", "accepted")
        receipts_of(finished, "started", "accepted", "finished")  # its finished receipt says it is over
        receipts_of(new_job_id(), "started", "accepted")  # holds no executor here
        receipts_of(retried, "accepted", attempt=1, executor_class="cpu.large")  # an earlier attempt
        receipts_of(running, "accepted", executor_class="cpu.large", attempt=2)  # not the class it holds
        return kept

    expected = await _stored_async(setup)
    assert await busy_receipts("cpu.small") == expected
    assert await busy_receipts("cpu.large") == []
    assert await busy_receipts("gpu.24gb") == []


async def test_busy_receipts_of_a_job_that_gave_its_executor_back_are_gone(two_classes: ExecutorPool) -> None:
    job_id = reserve(two_classes)
    await _stored_async(lambda: receipts_of(job_id, "started", "accepted"))
    assert len(await busy_receipts("cpu.small")) == 2
    two_classes.release(two_classes.jobs[job_id])
    assert await busy_receipts("cpu.small") == []


async def test_busy_receipts_keep_one_receipt_per_job_beyond_what_a_decline_carries(
    two_classes: ExecutorPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(miner.receipts, "BUSY_RECEIPTS_MAX", 3)
    first, second = reserve(two_classes), reserve(two_classes)
    receipts = await _stored_async(
        lambda: receipts_of(first, "started", "accepted") + receipts_of(second, "started", "accepted")
    )
    assert [r.payload.kind for r in await busy_receipts("cpu.small")] == [ReceiptKind.ACCEPTED] * 2
    assert await busy_receipts("cpu.small") == [receipts[1], receipts[3]]
