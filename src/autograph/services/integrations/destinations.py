"""Where webhooks may deliver: URL checks and an address policy against SSRF.

Policies (setting ``webhook_destinations``): ``public`` (default) refuses every address that
is not globally routable (loopback, private, link-local, carrier-grade NAT, multicast,
reserved, site-local), including an IPv6 address that embeds such an IPv4 one (IPv4-mapped,
-compatible and -translated, 6to4, Teredo, NAT64); ``loopback`` allows only loopback
addresses (tests and sandboxes); ``any``. The host is resolved and every address checked at
registration and before each delivery, and the delivery connects to the address checked
(:func:`pinned_request`): a name that resolves differently a moment later (DNS rebinding)
changes nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

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


# Not globally reachable although Python's ``is_global`` may say so (IANA special-purpose
# registries), or transition prefixes whose embedded IPv4 address is checked instead.
_REFUSED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15",
    "240.0.0.0/4", "fec0::/10", "64:ff9b:1::/48", "2001::/23", "2001:db8::/32", "100::/64",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_V4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, translated, 6to4, Teredo
    client, NAT64), or None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if (address in _NAT64 or address in _V4_TRANSLATED
            or (address in _V4_COMPATIBLE and int(address) > 1)):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def allowed(address: IPAddress, policy: str) -> bool:
    """True when ``policy`` lets a webhook connect to ``address``."""
    inner = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if policy == "any":
        return True
    if policy == "loopback":
        return (inner or address).is_loopback
    if inner is not None and not allowed(inner, policy):
        return False
    return (address.is_global and not address.is_multicast
            and not any(address in net for net in _REFUSED if net.version == address.version)
            and not (isinstance(address, ipaddress.IPv6Address) and address.is_site_local))


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


async def check_destination(url: str, policy: str) -> list[IPAddress]:
    """The addresses a URL's host resolves to, every one allowed by ``policy``; refuse
    (DestinationRefused) the URL when any is not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    refused = [str(a) for a in addresses if not allowed(a, policy)]
    if refused or not addresses:
        raise DestinationRefused(
            f"webhook destination {host} ({', '.join(refused) or 'no address'}) is not "
            f"allowed by the '{policy}' destination policy")
    return addresses


def pinned_request(client: httpx.AsyncClient, url: str, address: IPAddress, body: bytes,
                   headers: dict[str, str]) -> httpx.Request:
    """A POST of ``body`` to ``url`` that connects to ``address`` (the one checked) while
    keeping the URL's host in the Host header and, for https, in SNI and the certificate
    check."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal + (f":{parts.port}" if parts.port else "")
    target = parts._replace(netloc=netloc).geturl()
    host_header = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port
                                                            else "")
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return client.build_request("POST", target, content=body,
                                headers={**headers, "Host": host_header},
                                extensions=extensions)
