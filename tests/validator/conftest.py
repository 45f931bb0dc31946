"""Fixtures of the validator's tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.validator.receipt_pages import Canned


@pytest.fixture(scope="module")
def canned_server() -> Iterator[Canned]:
    server = Canned()
    thread = threading.Thread(target=server.serve_forever, name="canned-pages", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def canned(canned_server: Canned) -> Canned:
    """The canned server, with no page yet and nothing asked."""
    canned_server.pages.clear()
    canned_server.asked.clear()
    return canned_server
