"""How every process reaches PostgreSQL and Redis, whether the stack runs them or someone else
does (SPEC §11: a managed or HA PostgreSQL, a Redis service).

One place builds the connection parameters, so an external server's host, ``sslmode`` and
replication login reach the services, the backup tools and the health probes alike. Passwords
travel in keyword arguments and in the client programs' environment, never in argv.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from autograph.config import Settings
from autograph.secrets import Credentials


def pg_kwargs(settings: Settings, creds: Credentials, dbname: str | None = None, *,
              replication: bool = False, connect_timeout: int = 5) -> dict[str, Any]:
    """psycopg keyword arguments (the password included) for the application database, or
    ``dbname``; with ``replication`` the replication login."""
    return {
        "host": settings.pg_address,
        "port": settings.pg_port,
        "user": pg_login(settings, replication),
        "password": creds.pg_replication_password if replication else creds.pg_password,
        "dbname": dbname or settings.pg_database,
        "sslmode": settings.pg_sslmode,
        "connect_timeout": connect_timeout,
    }


def pg_login(settings: Settings, replication: bool = False) -> str:
    """The user name for ordinary work, or for WAL streaming and base backups."""
    if replication:
        return settings.pg_replication_user or settings.pg_user
    return settings.pg_user


def pg_tool_args(settings: Settings, *, replication: bool = False) -> list[str]:
    """``-h -p -U`` for the client programs (no secrets)."""
    return ["-h", settings.pg_address, "-p", str(settings.pg_port),
            "-U", pg_login(settings, replication)]


def pg_tool_env(settings: Settings, creds: Credentials, *,
                replication: bool = False) -> dict[str, str]:
    """Environment for the client programs: password, sslmode and a connect timeout."""
    password = creds.pg_replication_password if replication else creds.pg_password
    return {"PGPASSWORD": password, "PGSSLMODE": settings.pg_sslmode, "PGCONNECT_TIMEOUT": "5"}


def redis_kwargs(settings: Settings, creds: Credentials) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis`` (sync or asyncio): the external URL's host,
    port, database and TLS when one is set, else ours; the password included."""
    if settings.redis_url is None:
        return {"host": settings.host, "port": settings.redis_port,
                "password": creds.redis_password}
    parts = urlsplit(settings.redis_url.get_secret_value())
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        from autograph.errors import ConfigError

        raise ConfigError("invalid setting AUTOGRAPH_REDIS_URL: expected "
                          "redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://…")
    database = parts.path.strip("/") or "0"
    return {"host": parts.hostname, "port": parts.port or 6379,
            "db": int(database) if database.isdigit() else 0,
            "username": parts.username or None, "password": creds.redis_password,
            "ssl": parts.scheme == "rediss"}


def redis_address(settings: Settings) -> str:
    """``host:port`` of Redis, for messages (no password)."""
    if settings.redis_url is None:
        return f"{settings.host}:{settings.redis_port}"
    parts = urlsplit(settings.redis_url.get_secret_value())
    return f"{parts.hostname}:{parts.port or 6379}"
