"""Which client URLs the executor may connect to (executor/netguard.py); nothing here connects.

Address literals resolve without DNS; names are resolved by a patched ``getaddrinfo``.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from executor.netguard import HostUnresolved, UrlRefused, address_allowed, check_url

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.100.100.200",  # shared address space (a cloud's metadata service)
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::",  # 6to4 around 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_not_allowed(address: str) -> None:
    assert not address_allowed(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(address)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8000/x", "127.0.0.1"),
        ("http://10.0.0.1/x", "10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://[::1]:8080/x", "::1"),
        ("https://[::ffff:127.0.0.1]/x", "::ffff:127.0.0.1"),
        ("http://2130706433/x", "2130706433 (127.0.0.1)"),  # 127.0.0.1 as one number
    ],
)
async def test_urls_to_private_addresses_are_refused(url: str, shown: str) -> None:
    with pytest.raises(UrlRefused) as caught:
        await check_url(url)
    assert str(caught.value) == f"refused to connect to {shown}: not a public address"


async def test_url_to_a_public_address_passes() -> None:
    await check_url("https://8.8.8.8/file")


async def test_nothing_is_checked_when_the_policy_allows_private_addresses() -> None:
    await check_url("http://127.0.0.1/x", allow_private=True)


def fake_dns(monkeypatch: pytest.MonkeyPatch, answer: list[str] | Exception) -> None:
    async def getaddrinfo(self: Any, host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        if isinstance(answer, Exception):
            raise answer
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answer]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)


async def test_a_name_is_refused_if_any_of_its_addresses_is_private(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, ["8.8.8.8", "10.1.2.3"])
    with pytest.raises(UrlRefused) as caught:
        await check_url("https://files.example/data.bin")
    assert str(caught.value) == "refused to connect to files.example (10.1.2.3): not a public address"
    assert (caught.value.host, caught.value.address) == ("files.example", "10.1.2.3")


async def test_a_name_with_only_public_addresses_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, ["8.8.8.8", "2606:4700:4700::1111"])
    await check_url("https://files.example/data.bin")


async def test_a_name_that_does_not_resolve_is_reported_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    with pytest.raises(HostUnresolved, match=r"cannot resolve nowhere\.example"):
        await check_url("https://nowhere.example/x")
