"""The object outbox: every object write recorded beside the row that references it.

Objects are content-addressed and immutable (a new canvas or upload is a new key), so the
record is enough for the DR replicator (:mod:`autograph.dr.buckets.outbox`) to copy the bytes
into each backup tier within seconds, and for a recovery to put back exactly the objects the
restored database references. Recording in the row's own transaction means there is no
committed row whose object the replicator does not know about.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg

from autograph.errors import AutographError
from autograph.services.common.resources import Resources

log = logging.getLogger("autograph.outbox")

_INSERT = ("INSERT INTO object_outbox (bucket, object_key, sha256, size_bytes, content_type, "
           "metadata) VALUES (%s, %s, %s, %s, %s, %s)")


async def record(conn: Any, bucket: str, key: str, sha256: str, size: int,
                 content_type: str, metadata: dict[str, str] | None = None) -> None:
    """Record an object write inside the caller's transaction (the one inserting its row)."""
    await conn.execute(_INSERT, (bucket, key, sha256.strip(), size, content_type,
                                 json.dumps(metadata or {"sha256": sha256.strip()})))


async def record_alone(resources: Resources, bucket: str, key: str, sha256: str, size: int,
                       content_type: str, metadata: dict[str, str]) -> bool:
    """Record an object that has no row (an export: the object is its own record) in a
    transaction of its own, after the object was written. Never raises: when PostgreSQL is
    unreachable the export is only protected by the next snapshot, and that is logged."""
    try:
        pool = await resources.db()
        async with pool.connection() as conn:
            await record(conn, bucket, key, sha256, size, content_type, metadata)
    except (psycopg.Error, OSError, AutographError) as exc:
        log.warning("object %s/%s not recorded in the outbox (%s): protected by the next "
                    "snapshot only", bucket, key, type(exc).__name__)
        return False
    return True
