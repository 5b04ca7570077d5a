"""The webhook SSRF guard: every address form of a non-global IPv4/IPv6 is refused, and a
delivery connects to the address that was checked (no second resolution)."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from autograph.services.integrations.destinations import (
    DestinationRefused,
    allowed,
    check_destination,
    pinned_request,
)

REFUSED = [
    "127.0.0.1", "10.0.0.1", "169.254.169.254", "100.64.0.1", "192.0.0.8", "192.0.0.170",
    "0.0.0.1", "198.18.0.1", "240.0.0.1", "255.255.255.255", "224.0.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fec0::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:0:127.0.0.1",  # mapped, translated
    "::7f00:1", "::a9fe:a9fe",  # IPv4-compatible
    "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "64:ff9b:1::a00:1",  # NAT64
    "2002:7f00:1::1", "2002:a9fe:a9fe::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "2001:db8::1",
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8",
           "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_global_forms_are_refused(address: str) -> None:
    assert not allowed(ipaddress.ip_address(address), "public")


@pytest.mark.parametrize("address", ALLOWED)
def test_global_addresses_are_allowed(address: str) -> None:
    assert allowed(ipaddress.ip_address(address), "public")


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_policy_allows_loopback_forms(address: str) -> None:
    assert allowed(ipaddress.ip_address(address), "loopback")
    assert not allowed(ipaddress.ip_address("8.8.8.8"), "loopback")


def test_a_url_with_an_embedded_internal_address_is_refused() -> None:
    with pytest.raises(DestinationRefused):
        asyncio.run(check_destination("http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
                                      "public"))


@pytest.fixture
def receiver() -> Iterator[tuple[int, list[str]]]:
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            hosts.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hosts
    finally:
        server.shutdown()
        server.server_close()


def test_a_delivery_connects_to_the_checked_address_not_a_new_lookup(
        receiver: tuple[int, list[str]]) -> None:
    port, hosts = receiver

    async def send() -> int:
        async with httpx.AsyncClient(trust_env=False) as client:
            # The name does not resolve at all: only the pinned address can be reached.
            request = pinned_request(client, f"http://hooks.invalid:{port}/in",
                                     ipaddress.ip_address("127.0.0.1"), b"{}",
                                     {"Content-Type": "application/json"})
            return (await client.send(request)).status_code

    assert asyncio.run(send()) == 204
    assert hosts == [f"hooks.invalid:{port}"]
