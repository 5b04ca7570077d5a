"""Webhook registrations and the delivery log in PostgreSQL; events queued as deliveries.

Every function takes the caller's user id: another user's webhook is NotFound (404).
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from autograph.errors import Conflict, InvalidInput, NotFound

Pool = Any  # psycopg_pool.AsyncConnectionPool[AsyncConnection[Any]]

MAX_WEBHOOKS_PER_USER = 25
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}(\.[a-z0-9_]{1,32}){0,3}$")
KNOWN_EVENTS = ("diagram.created", "diagram.updated", "ping")

_WEBHOOK = "id, owner_id, url, events, description, active, created_at"
_DELIVERY = ("id, webhook_id, event_id, event_type, payload, status, attempts, "
             "next_attempt_at, last_status_code, last_error, attempt_log, created_at, "
             "delivered_at")


def check_event_type(value: str) -> str:
    """An event type such as ``diagram.created``; InvalidInput when malformed."""
    if not EVENT_TYPE.match(value):
        raise InvalidInput(f"invalid event type {value[:70]!r} (e.g. diagram.created)")
    return value


async def create_webhook(pool: Pool, owner_id: int, url: str, events: list[str],
                         description: str | None) -> dict[str, Any]:
    """Register a webhook with a new signing secret (returned once, here only).

    Raises Conflict when the user already has the maximum number of webhooks.
    """
    webhook_id = uuid.uuid4()
    secret = "whsec_" + secrets.token_urlsafe(32)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('webhooks'), %s::int)",
                           (owner_id % 2_000_000_000,))
        row = await (await conn.execute(
            "SELECT count(*) FROM webhooks WHERE owner_id = %s", (owner_id,))).fetchone()
        if row and row[0] >= MAX_WEBHOOKS_PER_USER:
            raise Conflict(f"at most {MAX_WEBHOOKS_PER_USER} webhooks per user")
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            f"INSERT INTO webhooks (id, owner_id, url, events, secret, description) "
            f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_WEBHOOK}",
            (webhook_id, owner_id, url, sorted(set(events)), secret, description))
        created = await cursor.fetchone()
    assert created is not None
    return {**created, "secret": secret}


async def list_webhooks(pool: Pool, owner_id: int) -> list[dict[str, Any]]:
    """The user's webhooks, oldest first (without secrets)."""
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(f"SELECT {_WEBHOOK} FROM webhooks WHERE owner_id = %s "
                             "ORDER BY created_at, id", (owner_id,))
        return list(await cursor.fetchall())


async def get_webhook(pool: Pool, owner_id: int, webhook_id: uuid.UUID) -> dict[str, Any]:
    """One of the user's webhooks; NotFound otherwise."""
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(f"SELECT {_WEBHOOK} FROM webhooks WHERE id = %s AND owner_id = %s",
                             (webhook_id, owner_id))
        row = await cursor.fetchone()
    if row is None:
        raise NotFound("webhook not found")
    return dict(row)


async def delete_webhook(pool: Pool, owner_id: int, webhook_id: uuid.UUID) -> None:
    """Delete a webhook and its delivery log; NotFound otherwise."""
    async with pool.connection() as conn:
        cursor = await conn.execute("DELETE FROM webhooks WHERE id = %s AND owner_id = %s",
                                    (webhook_id, owner_id))
        if cursor.rowcount == 0:
            raise NotFound("webhook not found")


async def list_deliveries(pool: Pool, owner_id: int, webhook_id: uuid.UUID,
                          limit: int) -> list[dict[str, Any]]:
    """The webhook's newest deliveries with their attempts; NotFound for a foreign one."""
    await get_webhook(pool, owner_id, webhook_id)
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE webhook_id = %s "
                             "ORDER BY created_at DESC, id LIMIT %s", (webhook_id, limit))
        return list(await cursor.fetchall())


def event_payload(event_id: str, event_type: str, created_at: datetime,
                  data: dict[str, Any]) -> dict[str, Any]:
    """The JSON body a webhook receives."""
    return {"id": event_id, "type": event_type,
            "created_at": created_at.isoformat().replace("+00:00", "Z"), "data": data}


async def enqueue_event(pool: Pool, owner_id: int, event_type: str, data: dict[str, Any],
                        only_webhook: uuid.UUID | None = None) -> tuple[str, list[uuid.UUID]]:
    """Queue one delivery of an event per matching active webhook of the user (or to one
    webhook); returns the event id and the delivery ids."""
    check_event_type(event_type)
    event_id = f"{event_type}.{uuid.uuid4().hex}"
    async with pool.connection() as conn, conn.transaction():
        now_row = await (await conn.execute("SELECT now()")).fetchone()
        assert now_row is not None
        payload = event_payload(event_id, event_type, now_row[0], data)
        cursor = await conn.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, payload) "
            "SELECT gen_random_uuid(), w.id, %(event_id)s, %(type)s, %(payload)s "
            "FROM webhooks w WHERE w.owner_id = %(owner)s AND w.active "
            "AND (%(only)s::uuid IS NULL OR w.id = %(only)s::uuid) "
            "AND (%(only)s::uuid IS NOT NULL OR cardinality(w.events) = 0 "
            "     OR %(type)s = ANY (w.events)) "
            "ON CONFLICT (webhook_id, event_id) DO NOTHING RETURNING id",
            {"event_id": event_id, "type": event_type, "payload": Jsonb(payload),
             "owner": owner_id, "only": only_webhook})
        ids = [row[0] for row in await cursor.fetchall()]
    return event_id, ids
