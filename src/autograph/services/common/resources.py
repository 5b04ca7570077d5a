"""The connections a service holds: PostgreSQL pool, Redis client, S3 client, credentials.

One ``Resources`` per app (``app.state.resources``), opened lazily so a service starts and
answers health checks while a dependency is down, and recovers by itself when it returns.

Services never change the schema (:mod:`autograph.schema` does, run by ``autograph migrate``,
``up`` and every restore): before the pool is first handed out the schema version is checked,
and while migrations are pending every use answers 503 naming them, until someone migrates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from autograph.config import Settings
from autograph.connections import pg_kwargs, redis_kwargs
from autograph.s3.boto import app_client
from autograph.schema.runner import require_current, status
from autograph.secrets import Credentials, load_credentials

log = logging.getLogger("autograph.services")


class Resources:
    """Lazily opened clients for one service process; ``close()`` releases them."""

    def __init__(self, settings: Settings, creds: Credentials | None = None, *,
                 prepare_database: Callable[[Resources], Awaitable[None]] | None = None) -> None:
        """The schema check, then ``prepare_database`` (bootstrap rows), run once before the
        pool is first handed out, and again on the next use if they failed (PostgreSQL down
        at start, or the schema behind)."""
        self.settings = settings
        self._creds = creds
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self._pool_lock = asyncio.Lock()
        self._prepare = prepare_database
        self._prepared = False
        self._redis: aioredis.Redis | None = None
        self._s3: Any = None

    @property
    def creds(self) -> Credentials:
        """The stack's credentials (read from HOME/secrets, or the settings)."""
        if self._creds is None:
            self._creds = load_credentials(self.settings)
        return self._creds

    def conninfo(self) -> dict[str, Any]:
        """Connection parameters for the application database (the password included)."""
        return {**pg_kwargs(self.settings, self.creds, connect_timeout=3),
                "application_name": "autograph"}

    async def db(self) -> AsyncConnectionPool[AsyncConnection[Any]]:
        """The PostgreSQL pool, opened on first use without waiting for a connection.

        Broken connections are detected on checkout and replaced, so a PostgreSQL restart
        heals without restarting the service.
        """
        if self._pool is not None and self._prepared:
            return self._pool
        async with self._pool_lock:
            if self._pool is None:
                pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
                    kwargs=self.conninfo(),
                    min_size=1,
                    max_size=10,
                    open=False,
                    timeout=5.0,
                    max_idle=300.0,
                    reconnect_timeout=8.0,
                    check=AsyncConnectionPool.check_connection,
                    name="autograph",
                )
                await pool.open(wait=False)
                self._pool = pool
            if not self._prepared:
                await asyncio.to_thread(require_current, self.conninfo())
                if self._prepare is not None:
                    await self._prepare(self)
                self._prepared = True
        return self._pool

    async def warm_up(self) -> None:
        """Open the pool and prepare the database now if PostgreSQL answers; otherwise log
        and leave it to the first request or health check (the service still starts)."""
        try:
            await self.db()
        except Exception as exc:  # startup must not fail because a dependency is down
            log.warning("database not ready at start: %s", exc)

    async def schema_lost(self) -> str:
        """A query met a missing table (e.g. a database restored by hand from a dump taken
        before that table existed): check the schema again (every use does until it passes)
        and return what to tell the client."""
        async with self._pool_lock:
            self._prepared = False
        try:
            found = await asyncio.to_thread(status, self.conninfo())
        except Exception as exc:  # PostgreSQL gone meanwhile: the next use says so
            return f"the database lacks a table this service needs ({exc})"
        if found.behind:
            log.warning("schema behind: %s", found.behind_message())
            return found.behind_message()
        return (f"the database lacks a table this service needs although its schema is "
                f"recorded at version {found.version}: it was changed outside the migrations")

    @property
    def database_prepared(self) -> bool:
        """True once the schema check (and the database preparation) has succeeded."""
        return self._prepared

    @property
    def redis(self) -> aioredis.Redis:
        """The Redis client (connections are made per command and re-made after a failure)."""
        if self._redis is None:
            self._redis = aioredis.Redis(
                **redis_kwargs(self.settings, self.creds),
                socket_timeout=3.0,
                socket_connect_timeout=2.0,
                health_check_interval=15,
                decode_responses=True,
                # One quick retry: a dropped connection is re-made, a dead server fails fast.
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
            )
        return self._redis

    @property
    def s3(self) -> Any:
        """The boto3 client for the application buckets (blocking: call it in a thread)."""
        if self._s3 is None:
            self._s3 = app_client(self.settings, self.creds, connect_timeout=2.0,
                                  read_timeout=30.0, retries=2)
        return self._s3

    async def close(self) -> None:
        """Close the pool and the Redis client (idempotent)."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
