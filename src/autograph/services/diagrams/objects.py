"""S3 side of the diagram service: checksummed puts and gets, and the deletion queue.

Writes: the object key is first reserved in ``object_deletions`` (due after a grace period),
then the object is written, then the row is inserted and the reservation removed in one
transaction; if that transaction fails the object is deleted at once, and if the process dies
in between, the reservation falls due and the purge deletes the orphan. Deletes: rows go
first, their objects are queued in the same transaction and removed afterwards (retried on
the next purge if S3 fails). The purge never deletes an object a row still references.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Iterator
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from autograph.errors import DependencyDown
from autograph.services.common.resources import Resources

log = logging.getLogger("autograph.diagrams")

DIAGRAMS_BUCKET = "diagrams"
UPLOADS_BUCKET = "uploads"
CHUNK = 1024 * 1024
RESERVATION_GRACE = "15 minutes"

_DROP_REFERENCED = """
    DELETE FROM object_deletions q
    WHERE (q.bucket = %s AND EXISTS (
               SELECT 1 FROM diagram_versions v WHERE v.object_key = q.object_key))
       OR (q.bucket = %s AND EXISTS (
               SELECT 1 FROM uploads u WHERE u.object_key = q.object_key))
"""


class ContentMissing(DependencyDown):
    """A row references an object that object storage no longer holds (a bucket lost and not
    yet restored): 503 naming the object, never a 500."""


class ContentDamaged(DependencyDown):
    """A stored object does not match the sha256 its row recorded: 503 naming the object."""


def _gone(bucket: str, key: str) -> ContentMissing:
    return ContentMissing(f"object {bucket}/{key} is missing from object storage (restore "
                          f"the {bucket} bucket from its backup)")


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound")


async def put_bytes(s3: Any, bucket: str, key: str, data: bytes, content_type: str,
                    sha256: str) -> None:
    """Store ``data`` at bucket/key with its sha256 as user metadata."""
    await asyncio.to_thread(s3.put_object, Bucket=bucket, Key=key, Body=data,
                            ContentType=content_type, Metadata={"sha256": sha256})


async def put_file(s3: Any, bucket: str, key: str, stream: IO[bytes], content_type: str,
                   sha256: str) -> None:
    """Stream a file object to bucket/key (multipart when large) with its sha256."""
    await asyncio.to_thread(s3.upload_fileobj, stream, bucket, key, ExtraArgs={
        "ContentType": content_type, "Metadata": {"sha256": sha256}})


async def get_verified(s3: Any, bucket: str, key: str, sha256: str) -> bytes:
    """The object's bytes, checked against the sha256 recorded in PostgreSQL.

    ContentMissing when the object is missing, ContentDamaged when it does not match (503).
    """
    try:
        response = await asyncio.to_thread(s3.get_object, Bucket=bucket, Key=key)
        data: bytes = await asyncio.to_thread(response["Body"].read)
    except ClientError as exc:
        if _missing(exc):
            raise _gone(bucket, key) from None
        raise
    if hashlib.sha256(data).hexdigest() != sha256.strip():
        raise ContentDamaged(f"object {bucket}/{key} does not match its recorded sha256")
    return data


async def open_stream(s3: Any, bucket: str, key: str) -> tuple[Iterator[bytes], int]:
    """A blocking chunk iterator over an object and its length; ContentMissing (503) if
    missing."""
    try:
        response = await asyncio.to_thread(s3.get_object, Bucket=bucket, Key=key)
    except ClientError as exc:
        if _missing(exc):
            raise _gone(bucket, key) from None
        raise
    body = response["Body"]

    def chunks() -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    return chunks(), int(response.get("ContentLength", 0))


async def delete_quietly(s3: Any, bucket: str, key: str) -> bool:
    """Delete an object, logging instead of raising; True when it is gone."""
    try:
        await asyncio.to_thread(s3.delete_object, Bucket=bucket, Key=key)
        return True
    except (BotoCoreError, ClientError) as exc:
        log.error("could not delete %s/%s: %s", bucket, key, exc)
        return False


async def undo_put(s3: Any, bucket: str, key: str) -> None:
    """Remove an object whose row could not be written (survives cancellation)."""
    await asyncio.shield(delete_quietly(s3, bucket, key))


async def reserve(resources: Resources, bucket: str, key: str) -> None:
    """Record an object about to be written, due for deletion after the grace period unless
    the row that references it commits first (then :func:`release` removes the record)."""
    pool = await resources.db()
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO object_deletions (bucket, object_key, not_before) "
            f"VALUES (%s, %s, now() + interval '{RESERVATION_GRACE}') ON CONFLICT DO NOTHING",
            (bucket, key))


async def release(conn: Any, bucket: str, key: str) -> None:
    """Drop a reservation inside the transaction that inserts the object's row."""
    await conn.execute("DELETE FROM object_deletions WHERE bucket = %s AND object_key = %s",
                       (bucket, key))


async def purge_queued(resources: Resources,
                       items: Iterable[tuple[str, str]] | None = None) -> int:
    """Delete queued objects that are due and unreferenced (or the given ones), dequeue those
    gone, stop at the first S3 failure; returns how many were removed. Never raises for an
    S3 failure."""
    pool = await resources.db()
    if items is None:
        async with pool.connection() as conn:
            await conn.execute(_DROP_REFERENCED, (DIAGRAMS_BUCKET, UPLOADS_BUCKET))
            cursor = await conn.execute(
                "SELECT bucket, object_key FROM object_deletions WHERE not_before <= now() "
                "ORDER BY queued_at LIMIT 1000")
            items = [(row[0], row[1]) for row in await cursor.fetchall()]
    done: list[tuple[str, str]] = []
    for bucket, key in items:
        if not await delete_quietly(resources.s3, bucket, key):
            break  # S3 is failing: leave the rest queued for the next purge
        done.append((bucket, key))
    if done:
        async with pool.connection() as conn:
            await conn.cursor().executemany(
                "DELETE FROM object_deletions WHERE bucket = %s AND object_key = %s", done)
    return len(done)

