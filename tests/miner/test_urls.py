"""The miner's HTTP routes (miner/urls.py) through Django's ASGI handler: receipt pages and health."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from miner.models import MinerReceipt
from miner.receipts import store
from node.identity import own_keypair
from protocol.receipts import Receipt, ReceiptPage, verify_page

from .conftest import VALIDATOR
from .receipt_helpers import make_receipt

# The views read the database on a worker thread: they must see committed rows.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("miner.urls")]


async def stored(count: int) -> tuple[list[Receipt], list[int]]:
    def make() -> tuple[list[Receipt], list[int]]:
        receipts = [store(make_receipt(validator=VALIDATOR)) for _ in range(count)]
        return receipts, list(MinerReceipt.objects.order_by("id").values_list("id", flat=True))

    return await sync_to_async(make)()


async def test_receipts_are_served_as_a_signed_page(async_client: AsyncClient) -> None:
    receipts, ids = await stored(3)
    response = await async_client.get("/api/v1/receipts")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    page = ReceiptPage.model_validate_json(response.content)
    verify_page(page, own_keypair().hotkey)
    assert (page.cursor, page.next_cursor, page.receipts) == (0, ids[-1], receipts)


async def test_after_and_limit_choose_the_page(async_client: AsyncClient) -> None:
    receipts, ids = await stored(4)
    response = await async_client.get("/api/v1/receipts", {"after": str(ids[0]), "limit": "2"})
    page = ReceiptPage.model_validate_json(response.content)
    verify_page(page, own_keypair().hotkey)
    assert (page.cursor, page.next_cursor, page.receipts) == (ids[0], ids[2], receipts[1:3])
    response = await async_client.get("/api/v1/receipts", {"after": str(ids[-1])})
    last = ReceiptPage.model_validate_json(response.content)
    assert (last.receipts, last.next_cursor) == ([], None)


async def test_the_default_page_is_500_receipts(async_client: AsyncClient) -> None:
    await sync_to_async(
        lambda: MinerReceipt.objects.bulk_create(
            MinerReceipt(
                job_id=r.payload.job_id,
                attempt=1,
                kind="started",
                validator_hotkey=VALIDATOR.hotkey,
                executor_class="cpu.small",
                at=r.payload.at,
                receipt=r.model_dump(mode="json"),
            )
            for r in (make_receipt(validator=VALIDATOR) for _ in range(501))
        )
    )()
    page = ReceiptPage.model_validate_json((await async_client.get("/api/v1/receipts")).content)
    assert len(page.receipts) == 500


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"after": "-1"}, "after must be a non-negative integer, not '-1'"),
        ({"after": "abc"}, "after must be a non-negative integer, not 'abc'"),
        ({"after": ""}, "after must be a non-negative integer, not ''"),
        ({"after": "1e3"}, "after must be a non-negative integer, not '1e3'"),
        ({"after": "٣"}, "after must be a non-negative integer, not '٣'"),  # a digit, but not ASCII
        ({"after": "9" * 19}, f"after must be a non-negative integer, not '{'9' * 19}'"),
        ({"limit": "0"}, "limit must be an integer from 1 to 5000, not 0"),
        ({"limit": "5001"}, "limit must be an integer from 1 to 5000, not 5001"),
        ({"limit": "ten"}, "limit must be a non-negative integer, not 'ten'"),
    ],
)
async def test_a_bad_cursor_or_limit_is_a_400_with_the_reason(
    async_client: AsyncClient, query: dict[str, str], message: str
) -> None:
    response = await async_client.get("/api/v1/receipts", query)
    assert response.status_code == 400
    assert response.json() == {"code": "bad_page_request", "message": message, "errors": []}


@pytest.mark.parametrize("path", ["/api/v1/receipts", "/api/v1/health"])
async def test_the_routes_only_read(async_client: AsyncClient, path: str) -> None:
    response = await async_client.post(path, {"after": "0"})
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert response.json() == {
        "code": "method_not_allowed",
        "message": "POST is not allowed here; allowed: GET, HEAD",
        "errors": [],
    }
    assert not await MinerReceipt.objects.aexists()


async def test_health_names_the_miner(async_client: AsyncClient) -> None:
    response = await async_client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "role": "miner", "hotkey": own_keypair().hotkey}
