"""Whether the executor may connect to a URL a client wrote (DESIGN.md §6).

A job's ``UrlInput.url`` and ``UrlOutput.url`` are fetched and sent to from the miner's host,
outside the job's sandbox; unchecked, a client could make the miner read its cloud metadata
endpoint (169.254.169.254), a database on loopback, or anything on its private network. So the
host is resolved and refused if *any* of its addresses is not a public unicast one.

Only client URLs are checked: the store links the facilitator signs are trusted (and usually
point at the facilitator itself, often on a private address).

Known gap, DNS rebinding: we resolve and check here, then httpx resolves again when it
connects, so a hostile DNS server can answer a public address to us and a private one to httpx.
Closing it needs connecting to the checked address itself (a custom transport pinning the IP,
with the original Host header and TLS server name); until then the check stops the plain cases.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx

from executor.errors import HostUnresolved, UrlRefused

__all__ = ["HostUnresolved", "UrlRefused", "address_allowed", "check_url"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a 6to4 or NAT64 address leads to, if any."""
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_allowed(address: str | IPAddress) -> bool:
    """True for a public unicast address; False for loopback, private, link-local and the like.

    ``is_global`` also rules out shared (100.64.0.0/10, where some clouds put their metadata
    service), documentation and benchmarking ranges.
    """
    if isinstance(address, str):
        address = ipaddress.ip_address(address.partition("%")[0])  # drop an IPv6 scope id
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # a socket connects to the IPv4 address itself
            return address_allowed(address.ipv4_mapped)
        embedded = _embedded_ipv4(address)
        if embedded is not None and not address_allowed(embedded):
            return False
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


async def check_url(url: str, *, allow_private: bool = False) -> None:
    """Resolve ``url``'s host and refuse it unless every address is public.

    Args:
        url: an absolute http(s) URL supplied by a client.
        allow_private: the miner's policy; when true nothing is checked (local grids, tests).

    Raises:
        UrlRefused: an address of the host is not public, or the URL has no host.
        HostUnresolved: the host does not resolve.
    """
    if allow_private:
        return
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UrlRefused(f"invalid URL: {exc}") from None
    host = parsed.raw_host.decode("ascii")  # what httpx will connect to (IDNA-encoded)
    if not host:
        raise UrlRefused("the URL has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostUnresolved(f"cannot resolve {host}: {exc}") from None
    if not infos:
        raise HostUnresolved(f"cannot resolve {host}: no address")
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if not address_allowed(address):
            shown = address if address == host else f"{host} ({address})"
            raise UrlRefused(f"refused to connect to {shown}: not a public address", host=host, address=address)
