"""Every schema change of the application, as numbered, append-only migrations.

Never edit a released migration (the runner refuses a database whose applied migration has a
different checksum): add a new one. Numbers are blocks: 1- the core tables, 1001- the
integration hub, 2001- the object outbox. They are applied in ascending order by one runner
(:mod:`autograph.schema.runner`, ``autograph migrate``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema step, applied once in its own transaction."""

    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "users, diagrams, versions, uploads", """
CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL,
    password_hash text NOT NULL,
    full_name     text,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE diagrams (
    id              uuid PRIMARY KEY,
    owner_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            text NOT NULL,
    current_version integer NOT NULL CHECK (current_version >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX diagrams_owner_updated ON diagrams (owner_id, updated_at DESC);

CREATE TABLE diagram_versions (
    diagram_id  uuid NOT NULL REFERENCES diagrams (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version >= 1),
    name        text NOT NULL,
    object_key  text NOT NULL,  -- shared by versions that only renamed the diagram
    sha256      char(64) NOT NULL,
    size_bytes  bigint NOT NULL CHECK (size_bytes >= 0),
    created_by  bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (diagram_id, version)
);

CREATE TABLE uploads (
    id            uuid PRIMARY KEY,
    diagram_id    uuid NOT NULL REFERENCES diagrams (id) ON DELETE CASCADE,
    owner_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename      text NOT NULL,
    content_type  text NOT NULL,
    object_key    text NOT NULL UNIQUE,
    sha256        char(64) NOT NULL,
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_diagram ON uploads (diagram_id, created_at);

-- Objects whose rows are gone: deleted from S3 after the transaction commits, and retried
-- later if S3 fails, so no object outlives its row untracked.
CREATE TABLE object_deletions (
    bucket      text NOT NULL,
    object_key  text NOT NULL,
    queued_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, object_key)
);
"""),
    Migration(2, "object reservations: queued deletions that wait until not_before", """
-- A write first reserves its object key here (not_before in the future) and removes the
-- reservation in the transaction that inserts the row: a crash between the object write and
-- the commit leaves a reservation, and the purge deletes the orphan object later.
ALTER TABLE object_deletions ADD COLUMN not_before timestamptz NOT NULL DEFAULT now();
CREATE INDEX object_deletions_due ON object_deletions (not_before);
CREATE INDEX diagram_versions_object_key ON diagram_versions (object_key);
"""),
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
    Migration(2001, "object outbox: every object write, recorded with its row", """
-- Each object written (canvas, upload, export) gets a row here in the transaction that
-- inserts the row referencing it; the DR replicator copies the object into every backup
-- tier and adds the tier to ``shipped``. Numbered in a block of its own (2001-).
CREATE TABLE object_outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bucket        text NOT NULL,
    object_key    text NOT NULL,
    sha256        char(64) NOT NULL,
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    content_type  text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}',
    written_at    timestamptz NOT NULL DEFAULT now(),
    shipped       text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX object_outbox_key ON object_outbox (bucket, object_key);
"""),
)
