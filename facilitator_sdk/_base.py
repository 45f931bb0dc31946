"""Everything the two clients share that does no I/O (the httpx ``BaseClient`` pattern).

Rate limits: a ``429`` from the facilitator is answered before the request is handled (nothing
happened), so the clients send the request again, freshly signed, whatever its method: up to
``rate_limit_retries`` times (3 by default), each time after the server's ``Retry-After`` (plus up
to 20% jitter, so that waiting requests do not all come back at once). A ``Retry-After`` over
:data:`MAX_RETRY_WAIT_S`, or a fourth 429, raises :class:`~facilitator_sdk.errors.RateLimitedError`
with ``retry_after``. ``rate_limit_retries=0`` turns retrying off.
"""

from __future__ import annotations

import email.utils
import math
import os
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import httpx

from facilitator_sdk._transfer import DownloadSink, Progress, target_path
from facilitator_sdk.errors import ConnectionError, GridError, api_error
from protocol.keys import Keypair
from protocol.spec import JobSpec, new_job_id, parse_spec, sign_job

__all__ = ["BaseClient", "Progress", "Since"]

Since = datetime | float | int

DEFAULT_TIMEOUT = 30.0
DEFAULT_RATE_LIMIT_RETRIES = 3
MAX_RETRY_WAIT_S = 30.0


class BaseClient:
    def __init__(
        self,
        facilitator_url: str,
        keypair: Keypair | str | os.PathLike[str],
        *,
        rate_limit_retries: int = DEFAULT_RATE_LIMIT_RETRIES,
    ) -> None:
        if rate_limit_retries < 0:
            raise ValueError(f"rate_limit_retries must be 0 or more, not {rate_limit_retries!r}")
        self.rate_limit_retries = rate_limit_retries
        self.facilitator_url = facilitator_url.rstrip("/")
        if not isinstance(keypair, Keypair):
            keypair = Keypair.load_or_create(Path(keypair))
        self.keypair = keypair
        scheme, netloc, _, _, _ = urlsplit(self.facilitator_url)
        if scheme not in ("http", "https") or not netloc:
            raise ValueError(f"facilitator URL must be http(s)://host:port, got {facilitator_url!r}")
        self.events_url = urlunsplit(("wss" if scheme == "https" else "ws", netloc, "/ws/client/", "", ""))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.facilitator_url} as {self.keypair.hotkey[:12]}…>"

    @property
    def api_url(self) -> str:
        return f"{self.facilitator_url}/api/v1"

    def _create_body(self, spec: JobSpec | dict[str, Any], job_id: str | None) -> tuple[dict[str, Any], Keypair | None]:
        """Validate locally (clear errors before any network), then sign exactly what is sent.

        A streaming job without a ``streaming_public_key`` gets a fresh per-job keypair, returned
        beside the body: it signs every request to the job, and never leaves this process.
        """
        raw = spec.to_wire() if isinstance(spec, JobSpec) else dict(spec)
        streaming_key = None
        if raw.get("streaming") and not raw.get("streaming_public_key"):
            streaming_key = Keypair.generate()
            raw["streaming_public_key"] = streaming_key.hotkey
        parse_spec(raw)
        job_id = job_id or new_job_id()
        return {"job_id": job_id, "spec": raw, "signature": sign_job(self.keypair, job_id, raw)}, streaming_key

    @staticmethod
    def _parse(response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = {"code": "bad_response", "message": response.text[:200]}
        if response.status_code >= 400:
            raise api_error(response.status_code, body, retry_after=retry_after(response))
        return body

    def _retry_wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending a refused request again (``attempt`` 0 is the first
        refusal); ``None``: do not, let :meth:`_parse` raise."""
        if response.status_code != 429 or attempt >= self.rate_limit_retries:
            return None
        wait = retry_after(response)
        if wait is None:
            wait = 2.0**attempt  # the server did not say: 1, 2, 4 s
        if wait > MAX_RETRY_WAIT_S:
            return None
        return wait * (1 + random.uniform(0, 0.2))

    @staticmethod
    def _list_params(status: str | None, limit: int, offset: int, since: Since | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        if since is not None:
            # A datetime goes as ISO 8601 (the server reads one without a zone as UTC); a number
            # as Unix seconds.
            params["since"] = since.isoformat() if isinstance(since, datetime) else str(since)
        return params

    def _connection_error(self, exc: Exception) -> ConnectionError:
        return ConnectionError(f"cannot reach the facilitator at {self.facilitator_url}: {exc}")

    # -- files: the API hands out signed URLs, the bytes go straight to the store ------------------

    def _store_url(self, url: str) -> str:
        """A signed URL as the API gave it: absolute (S3, ``GRID_STORAGE_URL``) or on the facilitator."""
        return urljoin(self.facilitator_url + "/", url)

    @staticmethod
    def _reports_route(job_id: str) -> str:
        return f"/jobs/{quote(job_id, safe='')}/reports"

    @staticmethod
    def _files_route(job_id: str, path: str) -> str:
        return f"/jobs/{quote(job_id, safe='')}/files/{quote(path, safe='/')}"

    @staticmethod
    def _store_answer(response: httpx.Response, action: str) -> dict[str, Any]:
        """The store's JSON answer (``{}`` if it sends none, as S3 does); raise if it refused."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            if isinstance(body, dict) and "code" in body:
                raise api_error(response.status_code, body)
            raise GridError(f"the store refused the {action}: {response.status_code} {response.text[:200]}")
        return body if isinstance(body, dict) else {}

    @staticmethod
    def _sink(info: dict[str, Any], dest: str | os.PathLike[str], on_progress: Progress | None = None) -> DownloadSink:
        """Where a file the API describes (``{path, url, sha256, size}``, from the job's result) is
        written and checked."""
        return DownloadSink(target_path(dest, info["path"]), info["path"], info["sha256"], info["size"], on_progress)


def retry_after(response: httpx.Response) -> float | None:
    """The response's ``Retry-After`` in seconds (delay-seconds or an HTTP date), ``None`` if absent or garbled."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None
