"""A miner's receipt pages served by hand, for the validator's fetching and collecting tests.

:class:`Canned` answers whatever page a test hands it, which is how a page altered on the way, or
a page with a bad receipt inside, reaches the validator. Its fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from protocol.keys import Keypair
from protocol.receipts import Receipt, ReceiptPage, sign_page
from tests.miner.receipt_helpers import make_receipt

VALIDATOR = Keypair.generate()
MINER = Keypair.generate()  # the miner behind the canned server


class Canned(ThreadingHTTPServer):
    """Answers ``GET /api/v1/receipts?after=N`` with ``pages[N]`` (bytes), or 404."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CannedHandler)
        self.pages: dict[int, bytes] = {}
        self.asked: list[dict[str, list[str]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _CannedHandler(BaseHTTPRequestHandler):
    server: Canned

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        self.server.asked.append(query)
        body = self.server.pages.get(int(query["after"][0]))
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


def receipt_of(miner: Keypair = MINER, **fields: object) -> Receipt:
    return make_receipt(validator=VALIDATOR, miner=miner, **fields)


def signed_page(receipts: list[Receipt], cursor: int, next_cursor: int | None, miner: Keypair = MINER) -> ReceiptPage:
    page = ReceiptPage(
        miner_hotkey=miner.hotkey, cursor=cursor, next_cursor=next_cursor, receipts=receipts, issued_at=time.time()
    )
    return sign_page(miner, page)


def serve(canned: Canned, page: ReceiptPage | dict) -> None:
    data = page.model_dump(mode="json") if isinstance(page, ReceiptPage) else page
    canned.pages[data["cursor"]] = json.dumps(data).encode()
