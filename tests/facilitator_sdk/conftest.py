"""A real facilitator for the SDK's tests: this process's Django (the test database, the test
settings) served over HTTP on 127.0.0.1 by a threaded WSGI server, as Django's live server does,
without its static and media file handlers (the facilitator serves neither)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer
from django.test.testcases import QuietWSGIRequestHandler


@pytest.fixture(scope="session")
def facilitator_server() -> Iterator[str]:
    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietWSGIRequestHandler, allow_reuse_address=False)
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, name="test-facilitator", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def live_url(facilitator_server: str, transactional_db: None) -> str:
    """The facilitator's URL; the test's writes are committed, so the server sees them."""
    return facilitator_server
