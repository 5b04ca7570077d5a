"""Files attached to diagrams: bytes in the ``uploads`` bucket, rows in PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from typing import IO, Any

import psycopg.errors
from psycopg.rows import dict_row

from autograph.errors import NotFound
from autograph.services.common.middleware import BodyTooLarge
from autograph.services.common.resources import Resources
from autograph.services.common.validation import clean_content_type, clean_filename
from autograph.services.diagrams import objects, outbox
from autograph.services.diagrams.models import UploadPublic, UploadsPublic

_UPLOAD = """
    SELECT u.id, u.diagram_id, u.filename, u.content_type, u.size_bytes, u.sha256,
           u.created_at, u.object_key
    FROM uploads u JOIN diagrams d ON d.id = u.diagram_id
"""


def _digest(stream: IO[bytes], limit: int) -> tuple[str, int]:
    """sha256 and size of a seekable stream (rewound afterwards); BodyTooLarge over limit."""
    stream.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(objects.CHUNK):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"upload over the limit of {limit} bytes")
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest(), size


def _public(row: dict[str, Any]) -> UploadPublic:
    return UploadPublic(**{k: v for k, v in row.items() if k != "object_key"})


async def _owned(resources: Resources, owner_id: int, diagram_id: uuid.UUID) -> None:
    pool = await resources.db()
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT 1 FROM diagrams WHERE id = %s AND owner_id = %s",
            (diagram_id, owner_id))).fetchone()
    if row is None:
        raise NotFound("diagram not found")


async def create_upload(resources: Resources, owner_id: int, diagram_id: uuid.UUID,
                        stream: IO[bytes], filename: str | None,
                        content_type: str | None) -> UploadPublic:
    """Store a file (spooled by the form parser) and its row; NotFound for a foreign
    diagram, BodyTooLarge over ``max_upload_bytes``. The object is removed if the row
    cannot be written."""
    await _owned(resources, owner_id, diagram_id)
    sha256, size = await asyncio.to_thread(_digest, stream,
                                           resources.settings.max_upload_bytes)
    upload_id = uuid.uuid4()
    key = f"{diagram_id}/{upload_id}"
    name, media = clean_filename(filename), clean_content_type(content_type)
    await objects.reserve(resources, objects.UPLOADS_BUCKET, key)
    await objects.put_file(resources.s3, objects.UPLOADS_BUCKET, key, stream, media, sha256)
    pool = await resources.db()
    try:
        async with pool.connection() as conn, conn.transaction():
            await objects.release(conn, objects.UPLOADS_BUCKET, key)
            await outbox.record(conn, objects.UPLOADS_BUCKET, key, sha256, size, media)
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(
                "INSERT INTO uploads (id, diagram_id, owner_id, filename, content_type, "
                "object_key, sha256, size_bytes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (upload_id, diagram_id, owner_id, name, media, key, sha256, size))
            await cursor.execute(_UPLOAD + " WHERE u.id = %s", (upload_id,))
            row = await cursor.fetchone()
    except psycopg.errors.ForeignKeyViolation:
        await objects.undo_put(resources.s3, objects.UPLOADS_BUCKET, key)
        raise NotFound("diagram not found") from None
    except BaseException:
        await objects.undo_put(resources.s3, objects.UPLOADS_BUCKET, key)
        raise
    assert row is not None
    return _public(row)


async def list_uploads(resources: Resources, owner_id: int,
                       diagram_id: uuid.UUID) -> UploadsPublic:
    """The diagram's uploads, oldest first; NotFound for a missing or foreign diagram."""
    await _owned(resources, owner_id, diagram_id)
    pool = await resources.db()
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(_UPLOAD + " WHERE d.id = %s AND d.owner_id = %s "
                             "ORDER BY u.created_at, u.id", (diagram_id, owner_id))
        rows = await cursor.fetchall()
    return UploadsPublic(uploads=[_public(row) for row in rows], count=len(rows))


async def _row(resources: Resources, owner_id: int, diagram_id: uuid.UUID,
               upload_id: uuid.UUID) -> dict[str, Any]:
    pool = await resources.db()
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(_UPLOAD + " WHERE d.id = %s AND d.owner_id = %s AND u.id = %s",
                             (diagram_id, owner_id, upload_id))
        row = await cursor.fetchone()
    if row is None:
        raise NotFound("upload not found")
    return row


async def open_upload(resources: Resources, owner_id: int, diagram_id: uuid.UUID,
                      upload_id: uuid.UUID) -> tuple[UploadPublic, Iterator[bytes]]:
    """The upload's record and a (blocking) chunk iterator over its bytes; NotFound."""
    row = await _row(resources, owner_id, diagram_id, upload_id)
    chunks, _length = await objects.open_stream(resources.s3, objects.UPLOADS_BUCKET,
                                                row["object_key"])
    return _public(row), chunks


async def delete_upload(resources: Resources, owner_id: int, diagram_id: uuid.UUID,
                        upload_id: uuid.UUID) -> None:
    """Delete the row (queuing its object in the same transaction), then the object."""
    row = await _row(resources, owner_id, diagram_id, upload_id)
    pool = await resources.db()
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute("DELETE FROM uploads WHERE id = %s RETURNING object_key",
                                    (upload_id,))
        if await cursor.fetchone() is None:
            raise NotFound("upload not found")
        await conn.execute("INSERT INTO object_deletions (bucket, object_key) VALUES (%s, %s) "
                           "ON CONFLICT DO NOTHING", (objects.UPLOADS_BUCKET, row["object_key"]))
    await objects.purge_queued(resources)
