"""Pooled connections between the services outlive the clients' idle keep-alive: a server that
closes an idle connection just as a client reuses it fails that request (the gateway answered
502 "failed to answer" under a steady load of creates before)."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

from autograph.stack.components import KEEP_ALIVE_SECONDS
from autograph.stack.lifecycle import Stack


def test_an_idle_connection_to_a_service_is_kept_longer_than_a_clients_pool_keeps_it(
        app_stack: Stack) -> None:
    for service in ("gateway", "diagram"):
        url = urlsplit(app_stack.settings.service_url(service))
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        try:
            connection.request("GET", "/health")
            first = connection.getresponse()
            first.read()
            assert first.status == 200
            time.sleep(6)  # past uvicorn's default 5 s and httpx's pool expiry (5 s)
            connection.request("GET", "/health")  # the same socket: still open
            second = connection.getresponse()
            second.read()
            assert second.status == 200, service
        finally:
            connection.close()
    assert KEEP_ALIVE_SECONDS > 5
