"""URLs our services call on someone else's behalf (webhooks, partners' photos), kept off the
inside of the deployment.

A URL must be http(s) without credentials and, unless private addresses are allowed, neither name
a loopback, private, link-local or otherwise non-global address nor resolve to one. The call then
goes to the very address that was checked, the URL's name kept in the Host header and, over TLS,
in the server name the certificate is checked against, so a DNS answer changed between the check
and the call (rebinding) cannot point it inside. Egress rules remain the stronger fence.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import unicodedata
from typing import Any
from urllib.parse import urlsplit

import httpx

_NAMES_NEVER_PUBLIC = ("localhost", ".localhost", ".local", ".internal")


class UnsafeUrlError(ValueError):
    """A URL we refuse to call."""


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse URLs that are malformed, not http(s) or, unless ``allow_private``, that name a
    non-public host (a literal address in any form the resolver accepts, such as ``127.1``)."""
    if any(unicodedata.category(character)[0] in "CZ" for character in url):
        raise UnsafeUrlError("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = httpx.URL(url).host
    except (ValueError, httpx.InvalidURL) as error:
        raise UnsafeUrlError(f"not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise UnsafeUrlError("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise UnsafeUrlError("the URL must not carry credentials")
    if port == 0:
        raise UnsafeUrlError("the URL's port must be between 1 and 65535")
    if allow_private:
        return
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(_NAMES_NEVER_PUBLIC):
        raise UnsafeUrlError(f"{host} is not a public host")
    address = _literal_address(host)
    if address is not None and not is_public_address(address):
        raise UnsafeUrlError(f"{host} is not a public address")


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` spells, in standard form or in the legacy IPv4 forms the resolver
    also takes (``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``); None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


_NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
_NEVER_PUBLIC_V6 = tuple(
    ipaddress.ip_network(network)
    for network in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible addresses
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b:1::/48",  # NAT64 for local use
        "fec0::/10",  # the deprecated site-local addresses
    )
)


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``address`` is global, and so is every IPv4 address it carries inside it: an IPv6
    address can lead to an IPv4 one (mapped, 6to4, Teredo, NAT64) that a gateway on the way would
    call."""
    if not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    if any(address in network for network in _NEVER_PUBLIC_V6):
        return False
    carried: list[ipaddress.IPv4Address] = [
        inner for inner in (address.ipv4_mapped, address.sixtofour) if inner is not None
    ]
    if address.teredo is not None:
        carried.extend(address.teredo)
    if address in _NAT64_PREFIX:
        carried.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return all(inner.is_global for inner in carried)


async def checked_address(url: str, *, allow_private: bool) -> str | None:
    """The public address a URL's host resolves to, to call it at (checked before every call);
    None when private URLs are allowed (the call then resolves the name itself). Refuses a host
    that resolves to any non-public address."""
    check_url(url, allow_private=allow_private)
    if allow_private:
        return None
    parts = urlsplit(url)
    host = httpx.URL(url).host
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise UnsafeUrlError(f"{host} does not resolve: {error}") from None
    addresses = [str(sockaddr[0]).split("%")[0] for *_, sockaddr in answers]
    if not all(is_public_address(ipaddress.ip_address(address)) for address in addresses):
        # Which address is not said: it would map the deployment's own names for anyone asking.
        raise UnsafeUrlError(f"{host} resolves to a non-public address")
    if not addresses:
        raise UnsafeUrlError(f"{host} does not resolve")
    return addresses[0]


def pinned_request(url: str, address: str | None) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """What to call ``url`` at ``address`` with: the URL naming the address, the Host header and
    the request extensions (the TLS server name); ``url`` as it is when ``address`` is None."""
    target = httpx.URL(url)
    if address is None:
        return target, {}, {}
    extensions: dict[str, Any] = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return target.copy_with(host=address), {"Host": target.netloc.decode("ascii")}, extensions
