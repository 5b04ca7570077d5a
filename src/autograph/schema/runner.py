"""The one migration runner: applies the pending migrations of :mod:`.versions` in order.

Who runs it: ``autograph migrate``, ``autograph up`` (once PostgreSQL is healthy, before any
service starts), ``autograph bootstrap`` (containers), and every restore and recovery before the
restored database goes live (a dump is migrated in its scratch database before the swap; a
cluster rebuilt from a base backup is migrated on its private socket before it listens). The
services never change the schema: they read :func:`status` and refuse while it is behind.

Safe when several runs start at once: the runner holds a PostgreSQL advisory lock for the whole
run and re-reads what is applied under it; each migration is applied with its bookkeeping row in
one transaction, so a failed one leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from pydantic import BaseModel, Field

from autograph.errors import DependencyDown, OperationFailed
from autograph.schema.versions import MIGRATIONS, Migration

log = logging.getLogger("autograph.migrations")

ADVISORY_LOCK_ID = 0x4147_5633  # "AGV3"
FIX = "run `autograph migrate`"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   char(64) NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


class SchemaBehind(DependencyDown):
    """The database lacks migrations this code needs (a service answers 503 until migrated,
    with Retry-After as when a query meets the missing table)."""

    headers = {"Retry-After": "5"}  # noqa: RUF012 (read-only, shared by every instance)


class Pending(BaseModel):
    """A migration not applied yet."""

    version: int
    name: str


class SchemaStatus(BaseModel):
    """Where a database's schema stands against the migrations this code knows."""

    database: str
    version: int = Field(description="highest applied migration (0: none)")
    head: int = Field(description="highest migration this code knows")
    applied: list[int]
    pending: list[Pending]
    unknown: list[int] = Field(default_factory=list,
                               description="applied versions this code does not know (newer)")

    @property
    def behind(self) -> bool:
        """True when a migration this code knows is not applied."""
        return bool(self.pending)

    def behind_message(self) -> str:
        """One line naming what is missing and what to do."""
        names = ", ".join(f"{p.version} ({p.name})" for p in self.pending)
        return (f"the database schema of {self.database} is behind: migration(s) {names} "
                f"not applied; {FIX}")


class MigrationRun(BaseModel):
    """What one run of the runner did."""

    applied_now: list[int]
    status: SchemaStatus

    def summary(self) -> str:
        """``schema at version 2001 (applied 1001, 2001)`` or ``… (was current)``."""
        done = ", ".join(map(str, self.applied_now))
        return (f"schema at version {self.status.version} "
                + (f"(applied {done})" if done else "(was current)"))


def checksum(migration: Migration) -> str:
    """The sha256 of a migration's SQL (detects an edited, already-applied migration)."""
    return hashlib.sha256(migration.sql.encode()).hexdigest()


def _connect(conninfo: Mapping[str, Any]) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(**{"connect_timeout": 5, **conninfo}, autocommit=True)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()
        raise DependencyDown(
            f"PostgreSQL at {conninfo.get('host')}:{conninfo.get('port')} unreachable "
            f"(database {conninfo.get('dbname')}): {first[0] if first else 'no answer'}"
        ) from None


def _applied(conn: psycopg.Connection[Any]) -> dict[int, str]:
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return {}
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(version): str(digest) for version, digest in rows}


def _status(database: str, applied: Mapping[int, str],
            migrations: tuple[Migration, ...]) -> SchemaStatus:
    known = {m.version for m in migrations}
    ordered = sorted(migrations, key=lambda m: m.version)
    return SchemaStatus(
        database=database, version=max(applied, default=0),
        head=max(known, default=0), applied=sorted(applied),
        pending=[Pending(version=m.version, name=m.name) for m in ordered
                 if m.version not in applied],
        unknown=sorted(set(applied) - known))


def status(conninfo: Mapping[str, Any],
           migrations: tuple[Migration, ...] = MIGRATIONS) -> SchemaStatus:
    """The schema status of the database ``conninfo`` names (psycopg keyword arguments).

    Raises DependencyDown when PostgreSQL cannot be reached.
    """
    with _connect(conninfo) as conn:
        applied = _applied(conn)
    return _status(str(conninfo.get("dbname", "")), applied, migrations)


def require_current(conninfo: Mapping[str, Any],
                    migrations: tuple[Migration, ...] = MIGRATIONS) -> SchemaStatus:
    """The status, when no migration is pending. Raises SchemaBehind naming the missing ones,
    DependencyDown when PostgreSQL cannot be reached."""
    found = status(conninfo, migrations)
    if found.behind:
        raise SchemaBehind(found.behind_message())
    return found


def migrate(conninfo: Mapping[str, Any],
            migrations: tuple[Migration, ...] = MIGRATIONS) -> MigrationRun:
    """Apply the pending migrations in ascending order; idempotent.

    Raises OperationFailed when an applied migration's SQL has changed or a migration fails
    (that one is rolled back, earlier ones stay), DependencyDown when PostgreSQL cannot be
    reached.
    """
    applied_now: list[int] = []
    database = str(conninfo.get("dbname", ""))
    with _connect(conninfo) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_ID,))
        try:
            conn.execute(_CREATE_TABLE)
            applied = _applied(conn)
            for migration in sorted(migrations, key=lambda m: m.version):
                if _apply(conn, migration, applied.get(migration.version)):
                    applied[migration.version] = checksum(migration)
                    applied_now.append(migration.version)
        except psycopg.OperationalError as exc:
            raise DependencyDown(f"PostgreSQL connection lost while migrating {database}: "
                                 f"{str(exc).strip()[:200]}") from None
        finally:
            if not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))
    return MigrationRun(applied_now=applied_now,
                        status=_status(database, applied, migrations))


def _apply(conn: psycopg.Connection[Any], migration: Migration, applied: str | None) -> bool:
    """Apply one migration unless applied (then check its checksum). True when applied now."""
    digest = checksum(migration)
    if applied is not None:
        if applied != digest:
            raise OperationFailed(
                f"schema migration {migration.version} ({migration.name}) differs from the "
                "one applied to this database (a released migration was edited)")
        return False
    try:
        with conn.transaction():
            conn.execute(migration.sql.encode())
            conn.execute("INSERT INTO schema_migrations (version, name, checksum) "
                         "VALUES (%s, %s, %s)", (migration.version, migration.name, digest))
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()
        raise OperationFailed(f"schema migration {migration.version} ({migration.name}) "
                              f"failed: {first[0] if first else type(exc).__name__}") from None
    log.info("applied schema migration", extra={"version": migration.version})
    return True
