"""Collecting the miners' receipts into the validator's database (validator/receipts_collect.py).

The miner is the canned page server (tests/validator/receipt_pages.py) on a loopback port; the
registry is a real client holding a signed snapshot that lists it and the receipts' validator.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from node.registry_client import RegistryClient
from protocol.keys import Keypair
from protocol.receipts import Receipt
from protocol.registry import Neuron, RegistrySnapshot, Role, sign_registry
from tests.miner.receipt_helpers import make_receipt
from tests.validator.receipt_pages import MINER, VALIDATOR, Canned, receipt_of, serve, signed_page
from validator import receipts_collect, receipts_fetch
from validator.models import MinerRecord, ReceiptRecord
from validator.receipts_collect import collect_receipts

FACILITATOR = Keypair.generate()

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def registry(canned: Canned, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RegistryClient:
    """A registry that lists the canned miner and ``VALIDATOR``; its facilitator is never asked."""
    refuse = httpx.MockTransport(lambda request: httpx.Response(503, json={"code": "down", "message": "down"}))
    client = RegistryClient(
        "http://facilitator.test", FACILITATOR.hotkey, tmp_path / "registry.json", http=httpx.Client(transport=refuse)
    )
    snapshot = RegistrySnapshot(
        version=1,
        issued_at=time.time(),
        facilitator_hotkey=FACILITATOR.hotkey,
        neurons=[
            Neuron(hotkey=MINER.hotkey, role=Role.MINER, address="ws://" + canned.url.removeprefix("http://")),
            Neuron(hotkey=VALIDATOR.hotkey, role=Role.VALIDATOR, stake=1.0),
        ],
    )
    assert client.accept(sign_registry(FACILITATOR, snapshot))
    monkeypatch.setattr(receipts_collect, "get_registry", lambda: client)
    return client


def stored() -> set[str]:
    return set(ReceiptRecord.objects.values_list("job_id", flat=True))


def ids(*receipts: Receipt) -> set[str]:
    return {receipt.payload.job_id for receipt in receipts}


def cursor() -> int:
    return MinerRecord.objects.get(hotkey=MINER.hotkey).receipts_cursor


def test_every_page_is_stored_with_its_cursor_and_the_next_run_carries_on(canned: Canned) -> None:
    first, second, third = receipt_of(), receipt_of(), receipt_of()
    serve(canned, signed_page([first, second], 0, 2))
    serve(canned, signed_page([third], 2, 3))
    assert collect_receipts(limit=2) == 3
    assert stored() == ids(first, second, third) and cursor() == 3
    assert ReceiptRecord.objects.get(job_id=third.payload.job_id).receipt == third.model_dump(mode="json")

    fourth = receipt_of()
    serve(canned, signed_page([fourth], 3, 4))
    canned.asked.clear()
    assert collect_receipts(limit=2) == 1
    assert stored() == ids(first, second, third, fourth) and cursor() == 4
    assert canned.asked == [{"after": ["3"], "limit": ["2"]}], "from the stored cursor, not from the start"


def test_a_bad_page_keeps_the_pages_before_it_and_the_next_run_starts_there(canned: Canned) -> None:
    good = [receipt_of(), receipt_of()]
    serve(canned, signed_page(good, 0, 2))
    later = receipt_of()
    altered = signed_page([later, receipt_of()], 2, 4).model_dump(mode="json")
    altered["receipts"] = altered["receipts"][:1]  # a receipt hidden on the way: the signature fails
    serve(canned, altered)
    assert collect_receipts(limit=2) == 2
    assert stored() == ids(*good) and cursor() == 2

    serve(canned, signed_page([later], 2, 3))
    assert collect_receipts(limit=2) == 1
    assert stored() == ids(*good, later) and cursor() == 3


def test_receipts_of_validators_the_registry_does_not_list_are_not_kept(canned: Canned) -> None:
    ours = receipt_of()
    # Both signatures hold, but its validator is a key of the miner's choosing, in no registry.
    invented = make_receipt(validator=Keypair.generate(), miner=MINER)
    serve(canned, signed_page([ours, invented], 0, 2))
    assert collect_receipts() == 1
    assert stored() == ids(ours) and cursor() == 2


def test_receipts_stored_already_are_skipped_before_their_signatures_are_checked(
    canned: Canned, monkeypatch: pytest.MonkeyPatch
) -> None:
    known, new = receipt_of(), receipt_of()
    assert ReceiptRecord.objects.keep(known)  # written by this validator's ledger when it signed it
    checked: list[str] = []
    verify = receipts_fetch.verify_receipt

    def counting(receipt: Receipt, **parties: str) -> None:
        checked.append(receipt.payload.job_id)
        verify(receipt, **parties)

    monkeypatch.setattr(receipts_fetch, "verify_receipt", counting)
    serve(canned, signed_page([known, new], 0, 2))
    assert collect_receipts() == 1
    assert checked == [new.payload.job_id]
    assert stored() == ids(known, new) and cursor() == 2


def test_a_miner_that_answers_with_an_error_keeps_its_cursor(canned: Canned) -> None:
    MinerRecord.objects.create(hotkey=MINER.hotkey, address="ws://elsewhere", receipts_cursor=7)
    assert collect_receipts() == 0  # the canned server has no page after 7: it answers 404
    assert cursor() == 7 and not stored()
    assert MinerRecord.objects.get(hotkey=MINER.hotkey).address == "ws://" + canned.url.removeprefix("http://")
