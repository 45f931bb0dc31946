"""Following the facilitator's registry from a validator or a miner (DESIGN.md §3, §8).

The client is Django-free; :func:`get_registry` builds a role's one client from its settings
(``miner/registry.py`` and ``validator/registry.py`` follow the registry through it).
:meth:`RegistryClient.sync` announces this party's address (miners),
fetches the signed snapshot, checks the facilitator's signature and keeps it: in memory for this
process, and in a JSON file so that a restart knows the registry before its first sync, and so
that a Celery worker's sync reaches the role's own process. It never raises: a facilitator that
cannot be reached, answers an error or sends a snapshot that fails its signature is logged, and
the snapshot held so far stays in force.

An older snapshot (lower version, not issued later) is refused too: replaying a registry the
facilitator signed yesterday cannot bring back a miner it has since removed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from protocol.errors import SignatureError
from protocol.keys import Keypair
from protocol.registry import RegistrySnapshot, Role, verify_registry
from protocol.requests import sign_request

__all__ = ["REGISTRY_PATH", "RegistryClient", "RegistryUnavailable", "get_registry"]

log = logging.getLogger("grid.registry")

REGISTRY_PATH = "/api/v1/registry"
ANNOUNCE_PATH = "/api/v1/registry/announce"


class RegistryUnavailable(Exception):
    """The facilitator could not be reached, or refused (``status``, ``code`` from its error body)."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "unreachable") -> None:
        super().__init__(message)
        self.status, self.code = status, code


class RegistryClient:
    """One party's view of the registry.

    Args:
        api_url: the facilitator's HTTP root (``http://127.0.0.1:8000``).
        facilitator_hotkey: the only key a snapshot may be signed with.
        cache_path: where the last good snapshot is kept between runs.
        keypair: this party's key; needed only to announce.
        http: an ``httpx.Client`` to send through (tests hand in one on an ASGI or mock transport).
    """

    def __init__(
        self,
        api_url: str,
        facilitator_hotkey: str,
        cache_path: str | os.PathLike[str],
        keypair: Keypair | None = None,
        *,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the facilitator API must be an http:// or https:// URL, not {api_url!r}")
        if len(facilitator_hotkey) != 64:
            raise ValueError("the facilitator's hotkey (64 hex characters) is needed to check the registry")
        self.api_url = api_url.rstrip("/")
        self.facilitator_hotkey = facilitator_hotkey
        self.cache_path = Path(cache_path)
        self.keypair = keypair
        self._prefix = parts.path.rstrip("/")  # the facilitator may sit under a path behind a proxy
        self._http = http or httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._snapshot: RegistrySnapshot | None = None
        self._etag = ""
        self._file_stamp: tuple[int, int] | None = None
        self._listeners: list[Callable[[RegistrySnapshot], None]] = []

    def __repr__(self) -> str:
        version = self._snapshot.version if self._snapshot else None
        return f"<RegistryClient {self.api_url} version={version}>"

    # -- reading -------------------------------------------------------------------------------

    def current(self) -> RegistrySnapshot | None:
        """The last good snapshot: this process's own, or a newer one another process left in the file."""
        self._reload()
        return self._snapshot

    def is_active(self, hotkey: str, role: Role) -> bool:
        snapshot = self.current()
        neuron = snapshot.find(hotkey, role) if snapshot is not None else None
        return neuron is not None and neuron.active

    def subscribe(self, listener: Callable[[RegistrySnapshot], None]) -> None:
        """Call ``listener(snapshot)`` after each change, on the thread that made it."""
        self._listeners.append(listener)

    # -- talking to the facilitator --------------------------------------------------------------

    def announce(self, address: str, role: Role = Role.MINER) -> dict:
        """Tell the facilitator where validators reach us.

        Raises:
            RegistryUnavailable: unreachable, or refused (``code``: ``not_registered``,
                ``role_conflict``, ``read_only``, ``invalid_address`` …).
        """
        if self.keypair is None:
            raise ValueError("announcing needs this party's keypair")
        body = json.dumps({"role": str(role), "address": address}).encode()
        path = self._prefix + ANNOUNCE_PATH
        headers = sign_request(self.keypair, "POST", path, "", body)
        response = self._send(
            "POST", ANNOUNCE_PATH, content=body, headers={**headers, "Content-Type": "application/json"}
        )
        return response.json()

    def fetch(self) -> RegistrySnapshot | None:
        """The facilitator's snapshot, signature checked; ``None`` if unchanged since the last fetch.

        Raises:
            RegistryUnavailable: unreachable, an error status, or not a snapshot at all.
            SignatureError: not signed by ``facilitator_hotkey``.
        """
        response = self._send("GET", REGISTRY_PATH, headers={"If-None-Match": self._etag} if self._etag else {})
        if response.status_code == 304:
            return None
        try:
            snapshot = RegistrySnapshot.model_validate_json(response.content)
        except ValidationError as exc:
            raise RegistryUnavailable(f"the facilitator sent no registry snapshot: {exc}", code="bad_snapshot") from exc
        verify_registry(snapshot, self.facilitator_hotkey)
        self._etag = response.headers.get("ETag", "")
        return snapshot

    def sync(self, address: str | None = None) -> RegistrySnapshot | None:
        """Announce ``address`` (if given), fetch, verify and keep; returns the snapshot in force."""
        if address:
            try:
                self.announce(address)
            except RegistryUnavailable as exc:
                log.warning("announcing %s to %s failed: %s", address, self.api_url, exc)
        try:
            snapshot = self.fetch()
        except RegistryUnavailable as exc:
            log.warning("registry sync with %s failed: %s", self.api_url, exc)
        except SignatureError as exc:
            log.error("registry from %s refused, keeping the previous one: %s (%s)", self.api_url, exc, exc.code)
        else:
            if snapshot is not None:
                self.accept(snapshot)
        return self.current()

    def accept(self, snapshot: RegistrySnapshot) -> bool:
        """Keep ``snapshot`` if it is properly signed and not older than ours; True if it changed anything.

        Raises:
            SignatureError: not signed by ``facilitator_hotkey``.
        """
        verify_registry(snapshot, self.facilitator_hotkey)
        with self._lock:
            if not _replaces(snapshot, self._snapshot):
                return False
            self._snapshot = snapshot
            self._write(snapshot)
        log.info("registry version %d: %d neurons", snapshot.version, len(snapshot.neurons))
        self._notify(snapshot)
        return True

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, route: str, **options: object) -> httpx.Response:
        try:
            response = self._http.request(method, self.api_url + route, **options)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"{method} {self.api_url}{route}: {exc}") from exc
        if response.status_code >= 400:
            try:
                error = response.json()
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "http_error", response.text[:200]
            raise RegistryUnavailable(
                f"HTTP {response.status_code} {code}: {message}", status=response.status_code, code=code
            )
        return response

    # -- the cache file --------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.cache_path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _write(self, snapshot: RegistrySnapshot) -> None:
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.cache_path.with_name(f".{self.cache_path.name}.{os.getpid()}.tmp")
            partial.write_text(snapshot.model_dump_json())
            os.replace(partial, self.cache_path)  # a reader never sees half a file
            self._file_stamp = self._stamp()
        except OSError as exc:
            log.warning("could not keep the registry in %s: %s", self.cache_path, exc)

    def _reload(self) -> None:
        """Take the file's snapshot if it changed since we last read or wrote it (and is good)."""
        stamp = self._stamp()
        if stamp is None or stamp == self._file_stamp:
            return
        with self._lock:
            self._file_stamp = stamp
            try:
                snapshot = RegistrySnapshot.model_validate_json(self.cache_path.read_bytes())
                verify_registry(snapshot, self.facilitator_hotkey)
            except (OSError, ValidationError, SignatureError) as exc:
                log.error("ignoring the registry file %s: %s", self.cache_path, exc)
                return
            if not _replaces(snapshot, self._snapshot):
                return
            self._snapshot = snapshot
        self._notify(snapshot)

    def _notify(self, snapshot: RegistrySnapshot) -> None:
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:
                log.exception("registry listener %r failed", listener)


_clients: dict[Role, tuple[tuple, RegistryClient]] = {}
_clients_lock = threading.Lock()


def get_registry(role: Role) -> RegistryClient | None:
    """The registry client of this process's ``role``, or ``None`` without ``GRID_FACILITATOR_API``.

    Built from the role's settings (``MINER_FACILITATOR_API`` and ``MINER_FACILITATOR_HOTKEY``
    for a miner, ``VALIDATOR_…`` for a validator) on first use, and again when they change; its
    snapshot is kept under ``GRID_HOME/registry/<role>-<hotkey>.json``.

    Raises:
        ImproperlyConfigured: an API without the facilitator's hotkey, or a malformed URL.
    """
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from node.identity import own_keypair

    prefix = role.value.upper()
    api = getattr(settings, f"{prefix}_FACILITATOR_API", "")
    if not api:
        return None
    hotkey = getattr(settings, f"{prefix}_FACILITATOR_HOTKEY", "")
    if not hotkey:
        raise ImproperlyConfigured(
            "GRID_FACILITATOR_API is set but GRID_FACILITATOR_HOTKEY is not: the registry's "
            "signature cannot be checked (`grid keys show facilitator` on the facilitator)"
        )
    keypair = own_keypair()
    config = (api, hotkey, str(settings.GRID_HOME), keypair.hotkey)
    with _clients_lock:
        known = _clients.get(role)
        if known is not None and known[0] == config:
            return known[1]
        cache = Path(settings.GRID_HOME) / "registry" / f"{role.value}-{keypair.hotkey[:16]}.json"
        try:
            client = RegistryClient(api, hotkey, cache, keypair)  # the key is used to announce (miners)
        except ValueError as exc:
            raise ImproperlyConfigured(f"GRID_FACILITATOR_API / GRID_FACILITATOR_HOTKEY: {exc}") from exc
        _clients[role] = (config, client)
        return client


def _replaces(snapshot: RegistrySnapshot, held: RegistrySnapshot | None) -> bool:
    """Whether ``snapshot`` should take the place of ``held``: not the same, not older."""
    if held is None:
        return True
    if snapshot.signature == held.signature:
        return False
    if snapshot.version < held.version and snapshot.issued_at <= held.issued_at:
        log.warning("registry version %d is older than ours (%d): ignored", snapshot.version, held.version)
        return False
    return True
