"""Request signing as an ``httpx.Auth`` (DESIGN.md §3), serving both clients from one flow."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from protocol.keys import Keypair
from protocol.requests import sign_request

__all__ = ["GridAuth"]


class GridAuth(httpx.Auth):
    requires_request_body = True

    def __init__(self, keypair: Keypair) -> None:
        self.keypair = keypair

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        query = request.url.query.decode("ascii")
        request.headers.update(sign_request(self.keypair, request.method, request.url.path, query, request.content))
        yield request
