"""The PostgreSQL server as the backup code sees it: connections, tool arguments, databases.

Credentials reach the client programs through ``PGPASSWORD`` in their environment, never argv.
Database names are always quoted as identifiers. Connection failures raise DependencyDown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from autograph.config import Settings
from autograph.connections import pg_login
from autograph.errors import DependencyDown, OperationFailed
from autograph.secrets import Credentials

MAX_IDENTIFIER = 63

COUNTABLE_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class PgServer:
    """Where the server is and how to log in (as the stack's superuser, ``pg_user``)."""

    host: str
    port: int
    user: str
    password: str
    bin_dir: Path
    live_database: str
    sslmode: str = "prefer"
    replication_user: str | None = None  # WAL and base backups (default: user)
    replication_password: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, creds: Credentials) -> PgServer:
        return cls(settings.pg_address, settings.pg_port, settings.pg_user, creds.pg_password,
                   settings.pg_bin, settings.pg_database, settings.pg_sslmode,
                   pg_login(settings, replication=True), creds.pg_replication_password)

    def program(self, name: str) -> str:
        """Path of a client program (``pg_dump``, ``pg_restore``) from the configured bin dir."""
        return str(self.bin_dir / name)

    def tool_args(self, dbname: str) -> list[str]:
        """Connection arguments for the client programs (no secrets)."""
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", dbname]

    def tool_env(self) -> dict[str, str]:
        """Environment for the client programs: the password and a connect timeout."""
        return {"PGPASSWORD": self.password, "PGSSLMODE": self.sslmode, "PGCONNECT_TIMEOUT": "5"}

    def replication_args(self) -> list[str]:
        """``-h -p -U`` for pg_basebackup / pg_receivewal (the replication login)."""
        return ["-h", self.host, "-p", str(self.port), "-U", self.replication_user or self.user]

    def replication_env(self) -> dict[str, str]:
        """Environment for pg_basebackup / pg_receivewal: the replication password."""
        return {**self.tool_env(), "PGPASSWORD": self.replication_password or self.password}

    def conninfo(self, dbname: str) -> dict[str, Any]:
        """psycopg keyword arguments for ``dbname`` (the password included: never log them)."""
        return {"host": self.host, "port": self.port, "user": self.user,
                "password": self.password, "dbname": dbname, "sslmode": self.sslmode}

    def connect(self, dbname: str | None = None, *, autocommit: bool = True) -> Any:
        """A psycopg connection (default: the maintenance database ``postgres``).

        Raises DependencyDown when the server cannot be reached or refuses the login.
        """
        try:
            return psycopg.connect(host=self.host, port=self.port, user=self.user,
                                   password=self.password, dbname=dbname or "postgres",
                                   autocommit=autocommit, connect_timeout=5,
                                   sslmode=self.sslmode)
        except psycopg.OperationalError as exc:
            raise DependencyDown(
                f"PostgreSQL at {self.host}:{self.port} unreachable "
                f"(database {dbname or 'postgres'}): {_first_line(exc)}"
            ) from None

    # Databases -------------------------------------------------------------------------------

    def database_exists(self, name: str) -> bool:
        with self.connect() as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None

    def databases(self, prefix: str) -> list[str]:
        """Database names starting with ``prefix``, sorted."""
        with self.connect() as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)"
                                " ORDER BY 1", (prefix,)).fetchall()
        return [row[0] for row in rows]

    def unused_name(self, base: str, label: str, stamp: str) -> str:
        """``derived_name(base, label, stamp)``, or with ``_02``, ``_03``… appended to the
        stamp when a database of that name exists (two restores in the same second)."""
        taken = set(self.databases(derived_name(base, label, stamp)))
        candidate, counter = derived_name(base, label, stamp), 1
        while candidate in taken:
            counter += 1
            candidate = derived_name(base, label, f"{stamp}_{counter:02d}")
        return candidate

    def create_database(self, name: str) -> None:
        """Create an empty database from template0 (UTF8), owned by our user.

        Raises OperationFailed (e.g. it exists already)."""
        self._admin(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'")
                    .format(sql.Identifier(name)), f"create database {name}")

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, disconnecting its sessions first."""
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                    .format(sql.Identifier(name)), f"drop database {name}")

    def _admin(self, statement: sql.Composed, what: str) -> None:
        with self.connect() as conn:
            try:
                conn.execute(statement)
            except psycopg.OperationalError as exc:
                raise DependencyDown(f"{what}: {_first_line(exc)}") from None
            except psycopg.Error as exc:
                raise OperationFailed(f"{what}: {_first_line(exc)}") from None

    def allow_connections(self, prefix: str) -> list[str]:
        """Re-open databases starting with ``prefix`` that refuse connections (left so by a
        swap killed halfway); returns their names."""
        with self.connect() as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE NOT datallowconn AND "
                                "NOT datistemplate AND starts_with(datname, %s)",
                                (prefix,)).fetchall()
            for (name,) in rows:
                conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true")
                             .format(sql.Identifier(name)))
        return [row[0] for row in rows]

    def swap(self, live: str, replacement: str, keep_as: str | None) -> None:
        """Put ``replacement`` in place of ``live`` in one short step.

        ``live`` (if it exists) becomes ``keep_as``. New connections to ``live`` are refused
        and existing ones terminated only for the renames, which happen in one transaction.
        Raises OperationFailed if sessions keep the databases busy; nothing is renamed then.
        """
        allow = "ALTER DATABASE {} ALLOW_CONNECTIONS {}"
        with self.connect() as conn:
            conn.execute(sql.SQL(allow.format("{}", "true")).format(sql.Identifier(replacement)))
            if not _exists(conn, live):
                _rename(conn, [(replacement, live)])
                return
            if keep_as is None:
                raise OperationFailed(f"database {live} exists and no name to keep it under")
            conn.execute(sql.SQL(allow.format("{}", "false")).format(sql.Identifier(live)))
            try:
                _rename(conn, [(live, keep_as), (replacement, live)])
            except BaseException:
                conn.execute(sql.SQL(allow.format("{}", "true")).format(sql.Identifier(live)))
                raise
            conn.execute(sql.SQL(allow.format("{}", "true")).format(sql.Identifier(keep_as)))


def _exists(conn: Any, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                        (name,)).fetchone() is not None


def _rename(conn: Any, renames: list[tuple[str, str]], attempts: int = 20) -> None:
    """Rename databases in one transaction, terminating their sessions first (retried)."""
    busy = [old for old, _new in renames]
    last_error = ""
    for _attempt in range(attempts):
        conn.execute("SELECT pg_terminate_backend(pid, 2000) FROM pg_stat_activity "
                     "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()", (busy,))
        try:
            with conn.transaction():
                for old, new in renames:
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}")
                                 .format(sql.Identifier(old), sql.Identifier(new)))
            return
        except psycopg.errors.ObjectInUse as exc:
            last_error = _first_line(exc)
            time.sleep(0.1)
        except psycopg.Error as exc:
            raise OperationFailed(f"could not swap databases: {_first_line(exc)}") from None
    raise OperationFailed(f"could not swap databases: {last_error}")


def tables(conn: Any) -> list[tuple[str, str]]:
    """Every ordinary table of the connection's database as ``(schema, table)``, sorted."""
    return [(row[0], row[1]) for row in conn.execute(COUNTABLE_TABLES).fetchall()]


def prepare_counting(conn: Any, *, parallel: bool) -> None:
    """Session settings for counting: JIT off (compiling costs more than it saves here);
    ``parallel=False`` when the count runs beside other work (less CPU in total)."""
    conn.execute("SET jit = off")
    if not parallel:
        conn.execute("SET max_parallel_workers_per_gather = 0")


def count_rows(conn: Any, schema: str, table: str) -> int:
    """Exact row count of one table."""
    query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema),
                                                         sql.Identifier(table))
    return int(conn.execute(query).fetchone()[0])


def row_counts(conn: Any, skip: set[str] | frozenset[str] = frozenset(),
               *, parallel: bool = True) -> dict[str, int]:
    """Exact row count of every ordinary table (``schema.table`` -> rows) in ``conn``'s
    snapshot, except the names in ``skip``."""
    prepare_counting(conn, parallel=parallel)
    counts: dict[str, int] = {}
    for schema, table in tables(conn):
        key = f"{schema}.{table}"
        if key not in skip:
            counts[key] = count_rows(conn, schema, table)
    return counts


def derived_name(base: str, label: str, stamp: str) -> str:
    """``<base>__<label>_<stamp>``, shortening ``base`` to fit PostgreSQL's 63-byte limit."""
    suffix = f"__{label}_{stamp}"
    room = MAX_IDENTIFIER - len(suffix.encode())
    short = base.encode()[:room].decode(errors="ignore")
    return short + suffix


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
