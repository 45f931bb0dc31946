"""Fetching a miner's receipts (validator/receipts_fetch.py) over real loopback HTTP.

``miner_http`` is the miner's own ASGI app (its routes, its database) served by uvicorn on a
free port; ``canned`` (tests/validator/receipt_pages.py) is a tiny HTTP server that answers whatever page a
test hands it, which is how a page altered on the way, or a page with a bad receipt inside,
reaches the fetcher.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from django.core.asgi import get_asgi_application
from django.db import connections
from django.test import override_settings

from grid.local import free_port
from miner.models import MinerReceipt
from miner.receipts import store
from node.identity import own_keypair
from protocol.keys import Keypair
from protocol.receipts import Receipt
from tests.miner.receipt_helpers import make_receipt
from tests.validator.receipt_pages import MINER, VALIDATOR, Canned, receipt_of, serve, signed_page
from tests.ws import WAIT_S
from validator.receipts_fetch import ReceiptFetchError, fetch_receipts

# -- a real miner's HTTP routes --------------------------------------------------------------------


@pytest.fixture
def miner_http(transactional_db: None) -> Iterator[str]:
    """The miner's HTTP routes on uvicorn, on a loopback port; its database is the test database."""
    port = free_port()
    with override_settings(ROOT_URLCONF="miner.urls"):
        server = uvicorn.Server(
            uvicorn.Config(get_asgi_application(), host="127.0.0.1", port=port, lifespan="off", log_level="warning")
        )
        thread = threading.Thread(target=server.run, name="miner-http", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10 * WAIT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the miner's HTTP server did not start")
            time.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(10 * WAIT_S)
            connections.close_all()


def stored(count: int) -> list[Receipt]:
    return [store(make_receipt(validator=VALIDATOR)) for _ in range(count)]


def last_cursor() -> int:
    return MinerReceipt.objects.order_by("id").last().id  # type: ignore[union-attr]


def test_every_receipt_comes_through_verified_page_after_page(miner_http: str) -> None:
    receipts = stored(5)
    fetched, cursor = fetch_receipts(miner_http, own_keypair().hotkey, 0, limit=2)
    assert fetched == receipts
    assert cursor == last_cursor()


def test_fetching_again_from_the_cursor_brings_only_what_is_new(miner_http: str) -> None:
    stored(3)
    _, cursor = fetch_receipts(miner_http + "/", own_keypair().hotkey, 0)
    assert fetch_receipts(miner_http, own_keypair().hotkey, cursor) == ([], cursor)
    new = stored(2)
    assert fetch_receipts(miner_http, own_keypair().hotkey, cursor) == (new, last_cursor())


def test_max_pages_stops_early_and_the_cursor_carries_on(miner_http: str) -> None:
    receipts = stored(5)
    first, cursor = fetch_receipts(miner_http, own_keypair().hotkey, 0, limit=2, max_pages=1)
    assert first == receipts[:2]
    rest, _ = fetch_receipts(miner_http, own_keypair().hotkey, cursor, limit=2)
    assert rest == receipts[2:]


def test_pages_of_another_miner_than_expected_are_refused(miner_http: str) -> None:
    stored(1)
    with pytest.raises(ReceiptFetchError) as caught:
        fetch_receipts(miner_http, MINER.hotkey, 0)
    assert caught.value.code == "wrong_miner"
    assert caught.value.message == f"receipts of {MINER.hotkey[:12]}… after 0: the page is another miner's"
    assert (caught.value.receipts, caught.value.cursor) == ([], 0)


def test_an_http_error_from_the_miner_is_a_fetch_error(miner_http: str) -> None:
    with pytest.raises(ReceiptFetchError) as caught:
        fetch_receipts(miner_http, own_keypair().hotkey, 0, limit=100_000)
    assert caught.value.code == "http_error"
    assert "the miner answered 400" in caught.value.message and "limit must be an integer from 1 to 5000" in str(
        caught.value
    )


# -- pages served by hand (tests/validator/receipt_pages.py) ---------------------------------------


def test_a_page_altered_on_the_way_is_refused_and_nothing_of_it_is_kept(canned: Canned) -> None:
    receipts = [receipt_of(), receipt_of()]
    page = signed_page(receipts, 0, 2).model_dump(mode="json")
    page["receipts"] = page["receipts"][:1]  # a receipt hidden by someone in between
    serve(canned, page)
    with pytest.raises(ReceiptFetchError) as caught:
        fetch_receipts(canned.url, MINER.hotkey, 0)
    assert caught.value.code == "bad_signature"
    assert caught.value.message == f"receipts of {MINER.hotkey[:12]}… after 0: signature does not verify"
    assert (caught.value.receipts, caught.value.cursor) == ([], 0)


def test_a_page_signed_by_another_key_than_the_miners_is_refused(canned: Canned) -> None:
    page = signed_page([receipt_of()], 0, 1).model_dump(mode="json")
    page["signature"] = signed_page([receipt_of()], 0, 1, miner=Keypair.generate()).signature
    serve(canned, page)
    with pytest.raises(ReceiptFetchError) as caught:
        fetch_receipts(canned.url, MINER.hotkey, 0)
    assert caught.value.code == "bad_signature"


def test_an_unsigned_page_is_refused(canned: Canned) -> None:
    serve(canned, {**signed_page([receipt_of()], 0, 1).model_dump(mode="json"), "signature": ""})
    with pytest.raises(ReceiptFetchError) as caught:
        fetch_receipts(canned.url, MINER.hotkey, 0)
    assert caught.value.code == "missing_signature"


def test_receipts_that_do_not_verify_inside_a_signed_page_are_dropped(canned: Canned) -> None:
    good = [receipt_of(), receipt_of()]
    wrong_miner_signature = receipt_of().model_copy(update={"miner_signature": receipt_of().miner_signature})
    another_miners = receipt_of(miner=Keypair.generate())  # valid, but for another miner
    half_signed = receipt_of(countersigned=False)
    forged_validator = receipt_of().model_copy(update={"validator_signature": receipt_of().validator_signature})
    receipts = [good[0], wrong_miner_signature, another_miners, half_signed, forged_validator, good[1]]
    serve(canned, signed_page(receipts, 0, 6))
    serve(canned, signed_page([], 6, None))
    assert fetch_receipts(canned.url, MINER.hotkey, 0, limit=6) == (good, 6)


def test_a_bad_page_after_good_ones_keeps_what_came_before(canned: Canned) -> None:
    first = [receipt_of(), receipt_of()]
    serve(canned, signed_page(first, 0, 2))
    serve(canned, {**signed_page([receipt_of()], 2, 3).model_dump(mode="json"), "next_cursor": 4})
    with pytest.raises(ReceiptFetchError) as caught:
        fetch_receipts(canned.url, MINER.hotkey, 0, limit=2)
    assert caught.value.code == "bad_signature"
    assert (caught.value.receipts, caught.value.cursor) == (first, 2)


def test_an_old_page_replayed_for_another_cursor_is_refused(canned: Canned) -> None:
    old = signed_page([receipt_of()], 0, 1)
    canned.pages[5] = old.model_dump_json().encode()
    with pytest.raises(ReceiptFetchError) as caught:
        fetch_receipts(canned.url, MINER.hotkey, 5)
    assert caught.value.code == "wrong_page"
    assert caught.value.message.endswith("asked for receipts after 5, got the page after 0")


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (lambda: signed_page([receipt_of()], 3, 3), "the next cursor 3 does not follow 3"),
        (lambda: signed_page([receipt_of()], 3, 1), "the next cursor 1 does not follow 3"),
        (lambda: signed_page([receipt_of(), receipt_of()], 3, 5), "asked for 1 receipts, got 2"),
    ],
    ids=["stuck", "backwards", "too-many"],
)
def test_a_signed_page_that_does_not_move_forward_or_holds_too_much_is_refused(
    canned: Canned, page: object, message: str
) -> None:
    serve(canned, page())  # type: ignore[operator]
    with pytest.raises(ReceiptFetchError) as caught:
        fetch_receipts(canned.url, MINER.hotkey, 3, limit=1)
    assert caught.value.code == "bad_page"
    assert caught.value.message.endswith(message)


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"{not json", "bad_page"), (b'{"cursor": 0}', "bad_page"), (None, "http_error")],
    ids=["not-json", "not-a-page", "404"],
)
def test_an_answer_that_is_not_a_page_is_refused(canned: Canned, body: bytes | None, code: str) -> None:
    if body is not None:
        canned.pages[0] = body
    with pytest.raises(ReceiptFetchError) as caught:
        fetch_receipts(canned.url, MINER.hotkey, 0)
    assert caught.value.code == code


def test_an_unreachable_miner_is_a_fetch_error() -> None:
    with pytest.raises(ReceiptFetchError) as caught:
        fetch_receipts(f"http://127.0.0.1:{free_port()}", MINER.hotkey, 0)
    assert caught.value.code == "unreachable"


def test_the_fetcher_asks_for_its_limit_and_stops_at_a_short_page(canned: Canned) -> None:
    serve(canned, signed_page([receipt_of()], 0, 1))
    assert fetch_receipts(canned.url, MINER.hotkey, 0, limit=7)[1] == 1
    assert canned.asked == [{"after": ["0"], "limit": ["7"]}], "a short page is the last: no more requests"


@pytest.mark.parametrize("args", [(-1, 1, 1), (0, 0, 1), (0, 1, 0)])
def test_a_negative_cursor_or_empty_limits_are_refused(args: tuple[int, int, int]) -> None:
    after, limit, max_pages = args
    with pytest.raises(ValueError, match=r"^after must be ≥ 0, limit and max_pages ≥ 1$"):
        fetch_receipts("http://127.0.0.1:9", MINER.hotkey, after, limit=limit, max_pages=max_pages)
