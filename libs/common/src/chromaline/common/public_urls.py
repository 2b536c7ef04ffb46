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
from typing import Any
from urllib.parse import urlsplit

import httpx

_NAMES_NEVER_PUBLIC = ("localhost", ".localhost", ".local", ".internal")


class UnsafeUrlError(ValueError):
    """A URL we refuse to call."""


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse URLs that are not http(s) or, unless ``allow_private``, that name a non-public host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrlError("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise UnsafeUrlError("the URL must not carry credentials")
    if allow_private:
        return
    host = parts.hostname.lower().rstrip(".")
    if host == "localhost" or host.endswith(_NAMES_NEVER_PUBLIC):
        raise UnsafeUrlError(f"{host} is not a public host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not address.is_global:
        raise UnsafeUrlError(f"{host} is not a public address")


async def checked_address(url: str, *, allow_private: bool) -> str | None:
    """The public address a URL's host resolves to, to call it at (checked before every call);
    None when private URLs are allowed (the call then resolves the name itself). Refuses a host
    that resolves to any non-public address."""
    check_url(url, allow_private=allow_private)
    if allow_private:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise UnsafeUrlError(f"{host} does not resolve: {error}") from None
    addresses = [str(sockaddr[0]).split("%")[0] for *_, sockaddr in answers]
    for address in addresses:
        if not ipaddress.ip_address(address).is_global:
            raise UnsafeUrlError(f"{host} resolves to the non-public address {address}")
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
