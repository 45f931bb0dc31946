"""node/registry_client.py against a stand-in facilitator (``httpx.MockTransport``): no Django, no sockets."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pytest

from node.registry_client import RegistryClient, RegistryUnavailable
from protocol.errors import SignatureError
from protocol.keys import Keypair
from protocol.registry import Neuron, RegistrySnapshot, Role, sign_registry
from protocol.requests import verify_request

FACILITATOR = Keypair.generate()
MINER = Keypair.generate()
VALIDATOR = Keypair.generate()
API = "http://facilitator.test"


def snapshot(version: int, *neurons: Neuron, issued_at: float | None = None, key: Keypair = FACILITATOR):
    unsigned = RegistrySnapshot(
        version=version,
        issued_at=time.time() if issued_at is None else issued_at,
        facilitator_hotkey=key.hotkey,
        neurons=list(neurons),
    )
    return sign_registry(key, unsigned)


def validator(active: bool = True) -> Neuron:
    return Neuron(hotkey=VALIDATOR.hotkey, role=Role.VALIDATOR, stake=1.0, active=active)


def miner(address: str = "ws://10.0.0.1:8001") -> Neuron:
    return Neuron(hotkey=MINER.hotkey, role=Role.MINER, address=address)


class Facilitator:
    """Answers ``GET /api/v1/registry`` with ``self.served`` and records announcements."""

    def __init__(self) -> None:
        self.served: RegistrySnapshot | bytes | None = snapshot(1, validator())
        self.announce_status = 200
        self.announced: list[tuple[str, dict]] = []
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path.endswith("/registry/announce"):
            signed = verify_request(request.headers, "POST", request.url.path, "", request.content)
            self.announced.append((signed.hotkey, json.loads(request.content)))
            if self.announce_status != 200:
                body = {"code": "not_registered", "message": "closed registry", "errors": []}
                return httpx.Response(self.announce_status, json=body)
            return httpx.Response(200, json={"neuron": {}, "version": 2})
        served = self.served
        body = served.model_dump_json().encode() if isinstance(served, RegistrySnapshot) else served
        etag = f'"{hash(body)}"'
        if request.headers.get("If-None-Match") == etag:
            return httpx.Response(304, headers={"ETag": etag})
        return httpx.Response(200, content=body, headers={"ETag": etag, "Content-Type": "application/json"})


@pytest.fixture
def facilitator() -> Facilitator:
    return Facilitator()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "registry" / "miner.json"


def client_for(facilitator: Facilitator, cache: Path, keypair: Keypair | None = MINER, api: str = API):
    return RegistryClient(
        api, FACILITATOR.hotkey, cache, keypair, http=httpx.Client(transport=httpx.MockTransport(facilitator))
    )


def test_sync_fetches_verifies_and_keeps_the_snapshot(facilitator: Facilitator, cache: Path) -> None:
    client = client_for(facilitator, cache)
    assert client.current() is None
    assert client.sync() == facilitator.served
    assert client.is_active(VALIDATOR.hotkey, Role.VALIDATOR)
    assert not client.is_active(VALIDATOR.hotkey, Role.MINER)
    assert not client.is_active(MINER.hotkey, Role.VALIDATOR)
    assert RegistrySnapshot.model_validate_json(cache.read_text()) == facilitator.served


def test_an_inactive_neuron_is_not_active_for_its_role(facilitator: Facilitator, cache: Path) -> None:
    facilitator.served = snapshot(1, validator(active=False))
    client = client_for(facilitator, cache)
    client.sync()
    assert client.current().find(VALIDATOR.hotkey) is not None
    assert not client.is_active(VALIDATOR.hotkey, Role.VALIDATOR)


def test_sync_announces_the_address_with_a_signed_request(facilitator: Facilitator, cache: Path) -> None:
    client_for(facilitator, cache).sync(address="ws://10.0.0.1:8001")
    assert facilitator.announced == [(MINER.hotkey, {"role": "miner", "address": "ws://10.0.0.1:8001"})]


def test_the_announcement_signs_the_path_under_the_facilitators_prefix(facilitator: Facilitator, cache: Path) -> None:
    client_for(facilitator, cache, api=API + "/grid/").sync(address="ws://10.0.0.1:8001")
    assert [hotkey for hotkey, _ in facilitator.announced] == [MINER.hotkey]


def test_a_refused_announcement_is_logged_and_the_registry_still_fetched(
    facilitator: Facilitator, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    facilitator.announce_status = 403
    client = client_for(facilitator, cache)
    with pytest.raises(RegistryUnavailable) as refused:
        client.announce("ws://10.0.0.1:8001")
    assert (refused.value.status, refused.value.code) == (403, "not_registered")
    assert client.sync(address="ws://10.0.0.1:8001") == facilitator.served
    assert "HTTP 403 not_registered: closed registry" in caplog.text


def test_a_tampered_snapshot_is_refused_and_the_previous_one_kept(
    facilitator: Facilitator, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(facilitator, cache)
    good = client.sync()
    forged = snapshot(2, validator(), miner())
    facilitator.served = forged.model_copy(update={"neurons": [validator(), miner("ws://evil:1")]})
    with caplog.at_level(logging.ERROR):
        assert client.sync() == good
    assert "refused, keeping the previous one: signature does not verify" in caplog.text
    assert RegistrySnapshot.model_validate_json(cache.read_text()) == good


def test_a_snapshot_signed_by_another_facilitator_is_refused(
    facilitator: Facilitator, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(facilitator, cache)
    good = client.sync()
    facilitator.served = snapshot(5, validator(), miner(), key=Keypair.generate())
    assert client.sync() == good
    assert "the registry is signed by another facilitator (wrong_facilitator)" in caplog.text
    facilitator.served = facilitator.served.model_copy(update={"facilitator_hotkey": FACILITATOR.hotkey})
    assert client.sync() == good


def test_an_unsigned_or_malformed_answer_is_refused(facilitator: Facilitator, cache: Path) -> None:
    client = client_for(facilitator, cache)
    good = client.sync()
    facilitator.served = snapshot(3, miner()).model_copy(update={"signature": ""})
    with pytest.raises(SignatureError, match="not signed"):
        client.fetch()
    facilitator.served = b'{"version": "many"}'
    with pytest.raises(RegistryUnavailable) as malformed:
        client.fetch()
    assert malformed.value.code == "bad_snapshot"
    facilitator.served = b"<html>"
    assert client.sync() == good


def test_an_older_snapshot_replayed_is_refused(facilitator: Facilitator, cache: Path) -> None:
    old = snapshot(3, validator(), miner(), issued_at=time.time() - 60)
    facilitator.served = snapshot(4, validator(), issued_at=time.time())  # the miner was removed since
    client = client_for(facilitator, cache)
    newest = client.sync()
    assert not client.accept(old)
    assert client.current() == newest


def test_a_lower_version_issued_later_is_taken_a_facilitator_that_started_afresh(
    facilitator: Facilitator, cache: Path
) -> None:
    client = client_for(facilitator, cache)
    client.accept(snapshot(40, validator(), issued_at=time.time() - 60))
    fresh = snapshot(2, validator(), miner())
    assert client.accept(fresh)
    assert client.current() == fresh


def test_an_unreachable_facilitator_leaves_the_snapshot_in_force(
    facilitator: Facilitator, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(facilitator, cache)
    good = client.sync()
    facilitator.down = True
    assert client.sync(address="ws://10.0.0.1:8001") == good
    assert "registry sync with http://facilitator.test failed" in caplog.text
    assert "Traceback" not in caplog.text


def test_an_unchanged_registry_is_304_and_notifies_nobody(facilitator: Facilitator, cache: Path) -> None:
    client = client_for(facilitator, cache)
    seen: list[int] = []
    client.subscribe(lambda snap: seen.append(snap.version))
    client.sync()
    assert client.fetch() is None  # If-None-Match answered 304
    client.sync()
    facilitator.served = snapshot(2, validator(), miner())
    client.sync()
    assert seen == [1, 2]


def test_a_restart_has_the_kept_snapshot_before_its_first_sync(facilitator: Facilitator, cache: Path) -> None:
    client_for(facilitator, cache).sync()
    facilitator.down = True
    restarted = client_for(facilitator, cache)
    assert restarted.current() == facilitator.served
    assert restarted.is_active(VALIDATOR.hotkey, Role.VALIDATOR)


def test_a_tampered_cache_file_is_ignored(
    facilitator: Facilitator, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client_for(facilitator, cache).sync()
    kept = json.loads(cache.read_text())
    kept["neurons"].append(miner("ws://evil:1").model_dump(mode="json"))
    cache.write_text(json.dumps(kept))
    assert client_for(facilitator, cache).current() is None
    assert "ignoring the registry file" in caplog.text


def test_a_snapshot_another_process_kept_reaches_this_one(facilitator: Facilitator, cache: Path) -> None:
    """A Celery worker syncs; the role's own process reads what it left in the file."""
    role = client_for(facilitator, cache)
    role.sync()
    seen: list[int] = []
    role.subscribe(lambda snap: seen.append(snap.version))
    facilitator.served = snapshot(2, validator(), miner())
    client_for(facilitator, cache).sync()  # the worker
    assert role.current() == facilitator.served
    assert seen == [2]
    assert role.is_active(MINER.hotkey, Role.MINER)


def test_a_listener_that_raises_does_not_stop_the_sync(
    facilitator: Facilitator, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(facilitator, cache)
    client.subscribe(lambda snap: 1 / 0)
    assert client.sync() == facilitator.served
    assert "registry listener" in caplog.text


@pytest.mark.parametrize(
    ("api", "hotkey", "message"),
    [
        ("ftp://x", FACILITATOR.hotkey, "the facilitator API must be an http:// or https:// URL, not 'ftp://x'"),
        ("http://", FACILITATOR.hotkey, "the facilitator API must be an http:// or https:// URL, not 'http://'"),
        (API, "", "the facilitator's hotkey (64 hex characters) is needed to check the registry"),
    ],
)
def test_bad_configuration_is_refused_with_the_reason(api: str, hotkey: str, message: str, cache: Path) -> None:
    with pytest.raises(ValueError) as error:
        RegistryClient(api, hotkey, cache)
    assert str(error.value) == message


def test_announcing_needs_a_keypair(facilitator: Facilitator, cache: Path) -> None:
    with pytest.raises(ValueError, match="announcing needs this party's keypair"):
        client_for(facilitator, cache, keypair=None).announce("ws://10.0.0.1:8001")
