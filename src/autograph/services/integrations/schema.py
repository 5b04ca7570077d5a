"""The integration hub's tables, as migrations numbered from 1001 (a block of its own in the
shared ``schema_migrations`` table, so the core schema's numbering is untouched).

Applied by the hub at start, after the core schema (webhooks reference ``users``).
"""

from __future__ import annotations

from autograph.services.common.schema import Migration

INTEGRATION_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1001, "integration hub: webhooks, deliveries, event cursor", """
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url         text NOT NULL,
    events      text[] NOT NULL DEFAULT '{}',  -- empty: every event
    secret      text NOT NULL,                 -- HMAC-SHA256 key for the signature header
    description text,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, created_at);

CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    webhook_id       uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    attempt_log      jsonb NOT NULL DEFAULT '[]',
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, created_at DESC);

-- How far the hub has turned new diagram versions into events.
CREATE TABLE integration_cursors (
    name     text PRIMARY KEY,
    position timestamptz NOT NULL
);
"""),
)
