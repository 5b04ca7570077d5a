"""Background work of the hub: turn new diagram versions into events, deliver with retries.

Both loops are safe with several replicas. The watcher runs under a transaction-scoped
advisory lock and inserts deliveries with ``ON CONFLICT DO NOTHING`` (one delivery per
webhook and event). The sender claims due deliveries with ``FOR UPDATE SKIP LOCKED`` and
leases them while it sends, so a crashed replica's claims come back after the lease.

Each request is a POST of the event JSON, signed: ``X-Autograph-Signature: sha256=<hex
HMAC-SHA256 of "<timestamp>.<body>" with the webhook's secret>`` and
``X-Autograph-Timestamp``. 2xx delivers; 408, 429, 5xx and network errors are retried after
``RETRY_DELAYS``; any other status, or a destination the policy refuses, fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from autograph.config import Settings
from autograph.errors import InvalidInput
from autograph.services.common.resources import Resources
from autograph.services.integrations.destinations import check_destination, pinned_request

log = logging.getLogger("autograph.integrations")

RETRY_DELAYS = (1.0, 4.0, 15.0, 60.0, 300.0)  # seconds before attempts 2..6
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
LEASE_SECONDS = 60
BATCH = 20
POLL_SECONDS = 1.0
RESCAN_SECONDS = 30  # versions committed late (long transactions) are still picked up
WATCHER_LOCK = 0x4147_5648  # "AGVH"
TIMEOUT = httpx.Timeout(10.0, connect=3.0)
USER_AGENT = "AutoGraph-Webhooks/3"

_WATCH = f"""
INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, payload)
SELECT gen_random_uuid(), w.id, e.event_id, e.event_type,
       jsonb_build_object('id', e.event_id, 'type', e.event_type,
                          'created_at', to_char(e.created_at AT TIME ZONE 'UTC',
                                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                          'data', jsonb_build_object('diagram_id', e.diagram_id,
                                                     'name', e.name, 'version', e.version,
                                                     'owner_id', e.owner_id))
FROM (SELECT v.diagram_id, v.version, v.name, v.created_at, d.owner_id,
             'diagram.' || v.diagram_id || '.v' || v.version AS event_id,
             CASE WHEN v.version = 1 THEN 'diagram.created' ELSE 'diagram.updated' END
                 AS event_type
      FROM diagram_versions v JOIN diagrams d ON d.id = v.diagram_id
      WHERE v.created_at > %(since)s - interval '{RESCAN_SECONDS} seconds') e
JOIN webhooks w ON w.owner_id = e.owner_id AND w.active AND w.created_at <= e.created_at
               AND (cardinality(w.events) = 0 OR e.event_type = ANY (w.events))
ON CONFLICT (webhook_id, event_id) DO NOTHING
"""


async def watch_versions(resources: Resources) -> int:
    """One pass of the watcher: queue deliveries for versions made since the cursor (and a
    short re-scan window); returns how many were queued (0 if another replica holds the
    lock)."""
    pool = await resources.db()
    async with pool.connection() as conn, conn.transaction():
        locked = await (await conn.execute("SELECT pg_try_advisory_xact_lock(%s)",
                                           (WATCHER_LOCK,))).fetchone()
        if not locked or not locked[0]:
            return 0
        await conn.execute("INSERT INTO integration_cursors (name, position) "
                           "VALUES ('diagram_versions', now()) ON CONFLICT DO NOTHING")
        row = await (await conn.execute(
            "SELECT position FROM integration_cursors WHERE name = 'diagram_versions'")
        ).fetchone()
        assert row is not None
        queued = (await conn.execute(_WATCH, {"since": row[0]})).rowcount
        await conn.execute(
            "UPDATE integration_cursors SET position = greatest(position, coalesce("
            "(SELECT max(created_at) FROM diagram_versions WHERE created_at > position), "
            "position)) WHERE name = 'diagram_versions'")
    return max(queued, 0)


async def claim_due(resources: Resources) -> list[dict[str, Any]]:
    """Lease up to ``BATCH`` due deliveries with their webhook's URL and secret."""
    pool = await resources.db()
    async with pool.connection() as conn, conn.transaction():
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            "UPDATE webhook_deliveries d "
            f"SET next_attempt_at = now() + interval '{LEASE_SECONDS} seconds' "
            "FROM webhooks w WHERE w.id = d.webhook_id AND d.id IN ("
            "  SELECT id FROM webhook_deliveries WHERE status = 'pending' "
            "  AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT %s "
            "  FOR UPDATE SKIP LOCKED) "
            "RETURNING d.id, d.event_type, d.payload, d.attempts, w.url, w.secret",
            (BATCH,))
        return list(await cursor.fetchall())


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


async def send_one(settings: Settings, client: httpx.AsyncClient,
                   delivery: dict[str, Any]) -> tuple[str, int | None, str | None]:
    """POST one delivery; returns (outcome, HTTP status, error) with outcome
    ``delivered``, ``retry`` or ``failed``."""
    try:
        addresses = await check_destination(delivery["url"], settings.webhook_destinations)
    except InvalidInput as exc:
        return "failed", None, exc.message
    body = json.dumps(delivery["payload"], separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Autograph-Event": delivery["event_type"],
               "X-Autograph-Delivery": str(delivery["id"]),
               "X-Autograph-Timestamp": timestamp,
               "X-Autograph-Signature": sign(delivery["secret"], timestamp, body)}
    try:
        response = await client.send(
            pinned_request(client, delivery["url"], addresses[0], body, headers))
    except httpx.HTTPError as exc:
        return "retry", None, f"{type(exc).__name__}: {str(exc)[:200]}"
    code = response.status_code
    if 200 <= code < 300:
        return "delivered", code, None
    if code in (408, 429) or code >= 500:
        return "retry", code, f"HTTP {code}"
    return "failed", code, f"HTTP {code} (not retried)"


async def record(resources: Resources, delivery: dict[str, Any], outcome: str,
                 code: int | None, error: str | None, duration_ms: float) -> None:
    """Store an attempt's result: delivered, failed, or pending again after a delay."""
    attempt = int(delivery["attempts"]) + 1
    if outcome == "retry" and attempt >= MAX_ATTEMPTS:
        outcome, error = "failed", f"{error}; gave up after {attempt} attempts"
    status = {"delivered": "delivered", "failed": "failed"}.get(outcome, "pending")
    delay = RETRY_DELAYS[min(attempt - 1, len(RETRY_DELAYS) - 1)]
    entry = {"attempt": attempt, "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
             "status_code": code, "error": error, "duration_ms": round(duration_ms, 1)}
    pool = await resources.db()
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE webhook_deliveries SET status = %s, attempts = %s, last_status_code = %s, "
            "last_error = %s, attempt_log = attempt_log || %s, "
            "next_attempt_at = now() + make_interval(secs => %s), "
            "delivered_at = CASE WHEN %s = 'delivered' THEN now() END WHERE id = %s",
            (status, attempt, code, error, Jsonb([entry]), delay, status, delivery["id"]))


class DeliveryWorker:
    """The watcher and sender loops of one replica; ``wake()`` sends new work at once."""

    def __init__(self, settings: Settings, resources: Resources) -> None:
        self.settings = settings
        self.resources = resources
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        """Start both loops."""
        self._client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False,
                                         trust_env=False)
        self._tasks = [asyncio.create_task(self._watch_loop(), name="webhook-watcher"),
                       asyncio.create_task(self._send_loop(), name="webhook-sender")]

    def wake(self) -> None:
        """Deliver newly queued events without waiting for the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loops (claimed deliveries return after their lease)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()

    async def _watch_loop(self) -> None:
        while True:
            try:
                if await watch_versions(self.resources):
                    self.wake()
            except psycopg.errors.UndefinedTable:  # a restored, older database
                await self.resources.schema_lost()
            except Exception as exc:  # PostgreSQL down or schema not ready: try again later
                log.warning("event watcher pass failed: %s", exc)
            await asyncio.sleep(POLL_SECONDS)

    async def _send_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                batch = await claim_due(self.resources)
                await asyncio.gather(*(self._deliver(d) for d in batch))
            except psycopg.errors.UndefinedTable:  # a restored, older database
                batch = []
                await self.resources.schema_lost()
            except Exception as exc:
                batch = []
                log.warning("webhook delivery pass failed: %s", exc)
            if len(batch) < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _deliver(self, delivery: dict[str, Any]) -> None:
        assert self._client is not None
        started = time.perf_counter()
        outcome, code, error = await send_one(self.settings, self._client, delivery)
        await record(self.resources, delivery, outcome, code, error,
                     (time.perf_counter() - started) * 1000)
        log.info("webhook delivery", extra={"delivery_id": str(delivery["id"]),
                                            "outcome": outcome, "status_code": code})
