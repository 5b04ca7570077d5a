"""Health probes for the stack's components: each answers (healthy, detail) quickly."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Probe = Callable[[], "Health"]


@dataclass(frozen=True)
class Health:
    """One probe's answer."""

    healthy: bool
    detail: str = ""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (we could bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return not port_open(host, port, timeout=0.2)


def private_port_range() -> range:
    """Ports to pick for a stack on free ports: below the kernel's ephemeral range (an
    outgoing connection can take a free port of that range between our check and our bind),
    from 20000; above it when the range starts too low to leave room."""
    try:
        low, high = (int(v) for v in
                     Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    if low >= 22000:
        return range(20000, low)
    return range(min(high + 1, 63000), 65000)


def postgres_probe(host: str, port: int, user: str, password: str, dbname: str,
                   sslmode: str = "prefer") -> Probe:
    """A probe that connects with a password and runs ``SELECT 1``."""

    def probe() -> Health:
        import psycopg

        try:
            with psycopg.connect(
                host=host, port=port, user=user, password=password, dbname=dbname,
                connect_timeout=2, sslmode=sslmode,
            ) as conn:
                conn.execute("SELECT 1")
            return Health(True, "accepting connections")
        except psycopg.Error as exc:
            return Health(False, str(exc).strip().splitlines()[0] if str(exc) else "unreachable")

    return probe


def redis_probe(connection: dict[str, object]) -> Probe:
    """A probe that authenticates and sends PING (``connection``: ``redis.Redis`` keywords)."""

    def probe() -> Health:
        import redis

        try:
            client = redis.Redis(**connection, socket_timeout=2,  # type: ignore[arg-type]
                                 socket_connect_timeout=2)
            ok = bool(client.ping())
            client.close()
            return Health(ok, "PONG" if ok else "no PONG")
        except redis.RedisError as exc:
            return Health(False, str(exc))

    return probe


def s3_probe(client_factory: Callable[[], object]) -> Probe:
    """A probe that lists buckets with the stack's credentials."""

    def probe() -> Health:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client = client_factory()
            client.list_buckets()  # type: ignore[attr-defined]
            return Health(True, "S3 API answering")
        except (BotoCoreError, ClientError) as exc:
            return Health(False, str(exc))

    return probe


def http_probe(url: str, timeout: float = 2.0) -> Probe:
    """A probe that expects ``{"status": "healthy"}`` with HTTP 200 from ``url``."""

    def probe() -> Health:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = json.loads(response.read() or b"{}")
                ok = response.status == 200 and body.get("status") == "healthy"
                return Health(ok, body.get("status", "?"))
        except urllib.error.HTTPError as exc:
            return Health(False, f"HTTP {exc.code}")
        except (OSError, ValueError) as exc:
            return Health(False, str(exc))

    return probe
