"""Health checks of the dependencies a service uses (each bounded by short timeouts)."""

from __future__ import annotations

import asyncio

import psycopg

from autograph.services.common.app import HealthCheck
from autograph.services.common.resources import Resources


def postgres_check(resources: Resources) -> HealthCheck:
    """Check out a pooled connection and run ``SELECT 1`` (proves the pool has healed)."""

    async def check() -> str:
        pool = await resources.db()
        async with pool.connection(timeout=3.0) as conn:
            await conn.execute("SELECT 1")
        return "ok"

    return check


def postgres_connect_check(resources: Resources) -> HealthCheck:
    """Open a fresh connection, run ``SELECT 1`` and close it (holds no connection between
    checks, so it never stands in the way of a database swap during a restore)."""

    async def check() -> str:
        conninfo = {**resources.conninfo(), "connect_timeout": 2}
        async with await psycopg.AsyncConnection.connect(**conninfo) as conn:
            await conn.execute("SELECT 1")
        return "ok"

    return check


def redis_check(resources: Resources) -> HealthCheck:
    """PING with the stack's password."""

    async def check() -> str:
        await resources.redis.ping()
        return "ok"

    return check


def s3_check(resources: Resources, bucket: str | None = None) -> HealthCheck:
    """HEAD the bucket the service writes to (or list buckets)."""

    async def check() -> str:
        if bucket:
            await asyncio.to_thread(resources.s3.head_bucket, Bucket=bucket)
        else:
            await asyncio.to_thread(resources.s3.list_buckets)
        return "ok"

    return check


def standard_checks(resources: Resources, *, s3_bucket: str | None = None,
                    postgres: bool = True, redis: bool = True,
                    s3: bool = True) -> dict[str, HealthCheck]:
    """The usual checks by name: ``postgres``, ``redis``, ``s3``."""
    checks: dict[str, HealthCheck] = {}
    if postgres:
        checks["postgres"] = postgres_check(resources)
    if redis:
        checks["redis"] = redis_check(resources)
    if s3:
        checks["s3"] = s3_check(resources, s3_bucket)
    return checks
