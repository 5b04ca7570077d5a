"""Where webhooks may deliver: URL checks and an address policy against SSRF.

Policies (setting ``webhook_destinations``): ``public`` (default) refuses every address that
is not globally routable (loopback, private, link-local, carrier-grade NAT, multicast,
reserved); ``loopback`` allows only loopback addresses (tests and sandboxes); ``any``.
The host is resolved and every address checked at registration and before each delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from autograph.errors import InvalidInput

MAX_URL = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(InvalidInput):
    """The URL's host resolves to an address the policy does not allow."""


def check_url(url: str) -> str:
    """The URL, stripped, when it is an absolute http(s) URL without credentials or
    fragment; InvalidInput otherwise."""
    url = url.strip()
    if len(url) > MAX_URL:
        raise InvalidInput(f"url longer than {MAX_URL} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidInput("url must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("url must start with http:// or https://")
    if not parts.hostname:
        raise InvalidInput("url has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("url must not carry credentials (use the signing secret)")
    if parts.fragment:
        raise InvalidInput("url must not have a fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise InvalidInput("url has an invalid port") from None
    return url


def allowed(address: IPAddress, policy: str) -> bool:
    """True when ``policy`` lets a webhook connect to ``address``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if policy == "any":
        return True
    if policy == "loopback":
        return address.is_loopback
    return address.is_global and not address.is_multicast


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to; InvalidInput when it does not resolve."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise InvalidInput(f"cannot resolve host {host!r}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def check_destination(url: str, policy: str) -> None:
    """Refuse (DestinationRefused) a URL whose host resolves to any disallowed address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    refused = [str(a) for a in addresses if not allowed(a, policy)]
    if refused or not addresses:
        raise DestinationRefused(
            f"webhook destination {host} ({', '.join(refused) or 'no address'}) is not "
            f"allowed by the '{policy}' destination policy")
