"""The HTTP client and the one retry loop shared by downloads and uploads (DESIGN.md §6).

An attempt is an async callable that either returns or raises; :func:`is_transient` decides,
as a pure function, whether its error is worth another attempt (connection errors, timeouts,
5xx) or final (4xx, a refused address, a limit), and :func:`with_retries` sleeps along
:func:`protocol.retry.backoff` in between. Every final error leaves as a :class:`DataPlaneError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from executor.datapolicy import DataPolicy
from executor.errors import DataPlaneError, HostUnresolved, HttpStatusError, UrlRefused
from executor.netguard import check_url
from protocol.retry import backoff
from protocol.status import FailureReason

__all__ = [
    "HttpStatusError",
    "check_status",
    "guard",
    "is_transient",
    "new_client",
    "redact",
    "require_store_url",
    "with_retries",
]

log = logging.getLogger("grid.executor.transfer")
T = TypeVar("T")

RETRY_DELAY_MAX_S = 10.0
SNIPPET_CHARS = 200
# httpx builds an SSL context (the system's CA bundle, ~25 ms of CPU) for every client, even one
# that only speaks plain HTTP; built once here, the fork server's executors inherit it.
SSL_CONTEXT = httpx.create_ssl_context()


def new_client(policy: DataPolicy) -> httpx.AsyncClient:
    """A client with the policy's per-request timeouts.

    Redirects are followed by hand (downloads only) so each hop can be checked, and proxy
    variables are ignored: the address checks assume a direct connection.
    """
    timeout = httpx.Timeout(policy.read_timeout_s, connect=policy.connect_timeout_s)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False, verify=SSL_CONTEXT)


def redact(url: str | httpx.URL) -> str:
    """``scheme://host[:port]/path``: query strings of signed URLs are credentials."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<invalid URL>"
    if not parsed.is_absolute_url:
        return parsed.path
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii', 'replace')}{parsed.path}"


def require_store_url(url: str, reason: FailureReason, what: str) -> None:
    """Refuse a store link that is not an absolute http(s) URL (a misconfigured facilitator)."""
    try:
        parsed = httpx.URL(url)
        absolute = parsed.scheme in ("http", "https") and bool(parsed.host)
    except httpx.InvalidURL:
        absolute = False
    if not absolute:
        raise DataPlaneError(
            reason,
            f"{what}: the store link {redact(url)!r} is not an absolute http(s) URL; "
            "the facilitator's GRID_STORAGE_URL must be absolute (e.g. http://host:8000/objects/)",
        )


async def guard(url: str | httpx.URL, policy: DataPolicy, reason: FailureReason, what: str) -> None:
    """Check a client's URL with :mod:`executor.netguard`; a refusal is final."""
    try:
        await check_url(str(url), allow_private=policy.allow_private_urls)
    except UrlRefused as exc:
        raise DataPlaneError(reason, f"{what}: {exc}") from None


async def check_status(response: httpx.Response) -> None:
    """Raise :class:`HttpStatusError` for a non-2xx reply of a streamed request."""
    if response.is_success:
        return
    head = b""
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= 4 * SNIPPET_CHARS:
            break
    snippet = " ".join(head.decode("utf-8", "replace").split())[:SNIPPET_CHARS]
    raise HttpStatusError(response.status_code, snippet)


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: connection failures, timeouts and 5xx; never 4xx."""
    if isinstance(exc, HttpStatusError):
        return exc.status >= 500
    if isinstance(exc, httpx.UnsupportedProtocol):
        return False
    return isinstance(exc, httpx.TransportError | HostUnresolved)


def describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        kind = {httpx.ConnectTimeout: "connecting", httpx.PoolTimeout: "waiting for a connection"}.get(
            type(exc), "waiting for data"
        )
        return f"timed out {kind}"
    if isinstance(exc, httpx.HTTPError | HostUnresolved):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return str(exc)


async def with_retries(
    attempt: Callable[[], Awaitable[T]], policy: DataPolicy, *, reason: FailureReason, what: str
) -> T:
    """Run ``attempt`` until it succeeds, up to ``policy.retries`` more times on transient errors.

    Args:
        attempt: one full try (a retried upload must reopen its stream from the start).
        policy: ``retries`` and ``retry_delay_s``.
        reason: the failure reason of a final HTTP error (DOWNLOAD_FAILED, UPLOAD_FAILED).
        what: names the transfer in messages, e.g. ``"input 'data.csv' (GET http://host/x)"``.

    Raises:
        DataPlaneError: a final error, or the last transient one once retries are spent.
    """
    delays = backoff(initial=policy.retry_delay_s, maximum=RETRY_DELAY_MAX_S)
    number = 0
    while True:
        number += 1
        try:
            return await attempt()
        except DataPlaneError:
            raise
        except (HttpStatusError, httpx.HTTPError, HostUnresolved) as exc:
            if not is_transient(exc):
                raise DataPlaneError(reason, f"{what}: {describe(exc)}") from exc
            if number > policy.retries:
                tries = "1 attempt" if number == 1 else f"{number} attempts"
                raise DataPlaneError(reason, f"{what}: {describe(exc)} (gave up after {tries})") from exc
            delay = next(delays)
            log.info("%s: %s; retrying in %.2f s", what, describe(exc), delay)
            await asyncio.sleep(delay)
