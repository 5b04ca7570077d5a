"""A small versioned-SQL migration runner (table ``schema_migrations``).

Safe when several services start at once: the runner holds a PostgreSQL advisory lock, and
each migration is applied with its bookkeeping row in one transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import Any

import psycopg

from autograph.errors import OperationFailed
from autograph.services.common.schema import MIGRATIONS, Migration

log = logging.getLogger("autograph.migrations")

ADVISORY_LOCK_ID = 0x4147_5633  # "AGV3"


def checksum(migration: Migration) -> str:
    """The sha256 of a migration's SQL (detects an edited, already-applied migration)."""
    return hashlib.sha256(migration.sql.encode()).hexdigest()


async def migrate(conninfo: dict[str, Any],
                  migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the pending migrations in order; return the versions applied by this call.

    Raises OperationFailed when an applied migration's SQL has changed or a migration fails
    (that migration is rolled back); psycopg.OperationalError when PostgreSQL is unreachable.
    """
    applied_now: list[int] = []
    async with await psycopg.AsyncConnection.connect(**conninfo, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_ID,))
        try:
            await conn.execute("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    checksum   char(64) NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )""")
            cursor = await conn.execute("SELECT version, checksum FROM schema_migrations")
            applied = {row[0]: row[1] for row in await cursor.fetchall()}
            for migration in sorted(migrations, key=lambda m: m.version):
                digest = checksum(migration)
                if migration.version in applied:
                    if applied[migration.version] != digest:
                        raise OperationFailed(
                            f"schema migration {migration.version} ({migration.name}) differs "
                            "from the one applied to this database"
                        )
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql.encode())
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) "
                            "VALUES (%s, %s, %s)", (migration.version, migration.name, digest))
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    raise OperationFailed(
                        f"schema migration {migration.version} ({migration.name}) failed: "
                        f"{str(exc).strip().splitlines()[0]}"
                    ) from None
                log.info("applied schema migration", extra={"version": migration.version})
                applied_now.append(migration.version)
        finally:
            if not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))
    return applied_now


async def schema_version(conninfo: dict[str, Any]) -> int:
    """The highest applied migration version (0 for an empty database)."""
    async with await psycopg.AsyncConnection.connect(**conninfo) as conn:
        cursor = await conn.execute(
            "SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = await cursor.fetchone()
        if not row or not row[0]:
            return 0
        cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        row = await cursor.fetchone()
        return int(row[0]) if row else 0
