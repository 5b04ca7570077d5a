"""Diagrams and their versions: canvas JSON in the ``diagrams`` bucket, rows in PostgreSQL.

Every function takes the caller's user id: another user's diagram is NotFound (404).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from psycopg.rows import dict_row

from autograph.errors import InvalidInput, NotFound
from autograph.services.common.resources import Resources
from autograph.services.diagrams import objects, outbox
from autograph.services.diagrams.models import (
    DiagramDetail,
    DiagramPublic,
    DiagramsPublic,
    VersionDetail,
    VersionPublic,
    VersionsPublic,
)

CANVAS_TYPE = "application/json"

_DIAGRAM = """
    SELECT d.id, d.name, d.owner_id, d.current_version, v.sha256, v.size_bytes,
           d.created_at, d.updated_at, v.object_key
    FROM diagrams d
    JOIN diagram_versions v ON v.diagram_id = d.id AND v.version = d.current_version
"""
_VERSION = """
    SELECT v.diagram_id, v.version, v.name, v.sha256, v.size_bytes, v.created_by,
           v.created_at, v.object_key
    FROM diagram_versions v JOIN diagrams d ON d.id = v.diagram_id
"""


def encode_canvas(canvas: dict[str, Any]) -> tuple[bytes, str]:
    """The canvas as compact UTF-8 JSON and its sha256; InvalidInput for NaN/Infinity."""
    try:
        data = json.dumps(canvas, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode()
    except ValueError:
        raise InvalidInput("canvas must be plain JSON (no NaN or Infinity)") from None
    return data, hashlib.sha256(data).hexdigest()


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "object_key"}


async def _canvas(resources: Resources, row: dict[str, Any]) -> dict[str, Any]:
    data = await objects.get_verified(resources.s3, objects.DIAGRAMS_BUCKET,
                                      row["object_key"], row["sha256"])
    canvas: dict[str, Any] = json.loads(data)
    return canvas


async def create_diagram(resources: Resources, owner_id: int, name: str,
                         canvas: dict[str, Any] | None) -> DiagramDetail:
    """Reserve the object key, store the canvas object, then the diagram and its version 1
    in one transaction (the object is deleted again if the transaction fails)."""
    data, sha256 = encode_canvas(canvas or {})
    diagram_id = uuid.uuid4()
    key = f"{diagram_id}/{uuid.uuid4().hex}.json"
    pool = await resources.db()
    await objects.reserve(resources, objects.DIAGRAMS_BUCKET, key)
    await objects.put_bytes(resources.s3, objects.DIAGRAMS_BUCKET, key, data, CANVAS_TYPE,
                            sha256)
    try:
        async with pool.connection() as conn, conn.transaction():
            await objects.release(conn, objects.DIAGRAMS_BUCKET, key)
            await outbox.record(conn, objects.DIAGRAMS_BUCKET, key, sha256, len(data),
                                CANVAS_TYPE)
            await conn.execute(
                "INSERT INTO diagrams (id, owner_id, name, current_version) "
                "VALUES (%s, %s, %s, 1)", (diagram_id, owner_id, name))
            await conn.execute(
                "INSERT INTO diagram_versions (diagram_id, version, name, object_key, sha256, "
                "size_bytes, created_by) VALUES (%s, 1, %s, %s, %s, %s, %s)",
                (diagram_id, name, key, sha256, len(data), owner_id))
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(_DIAGRAM + " WHERE d.id = %s", (diagram_id,))
            row = await cursor.fetchone()
    except BaseException:
        await objects.undo_put(resources.s3, objects.DIAGRAMS_BUCKET, key)
        raise
    assert row is not None
    return DiagramDetail(**_fields(row), canvas=canvas or {})


async def _diagram_row(resources: Resources, owner_id: int,
                       diagram_id: uuid.UUID) -> dict[str, Any]:
    pool = await resources.db()
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(_DIAGRAM + " WHERE d.id = %s AND d.owner_id = %s",
                             (diagram_id, owner_id))
        row = await cursor.fetchone()
    if row is None:
        raise NotFound("diagram not found")
    return row


async def get_diagram(resources: Resources, owner_id: int,
                      diagram_id: uuid.UUID) -> DiagramDetail:
    """The diagram with its current canvas (checked against its sha256); NotFound."""
    row = await _diagram_row(resources, owner_id, diagram_id)
    return DiagramDetail(**_fields(row), canvas=await _canvas(resources, row))


async def list_diagrams(resources: Resources, owner_id: int, limit: int,
                        offset: int) -> DiagramsPublic:
    """A page of the owner's diagrams, most recently updated first, and their count."""
    pool = await resources.db()
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            _DIAGRAM + " WHERE d.owner_id = %s ORDER BY d.updated_at DESC, d.id "
            "LIMIT %s OFFSET %s", (owner_id, limit, offset))
        rows = await cursor.fetchall()
        counted = await (await conn.execute(
            "SELECT count(*) FROM diagrams WHERE owner_id = %s", (owner_id,))).fetchone()
    return DiagramsPublic(diagrams=[DiagramPublic(**_fields(row)) for row in rows],
                          count=int(counted[0]) if counted else 0)


async def update_diagram(resources: Resources, owner_id: int, diagram_id: uuid.UUID,
                         name: str | None, canvas: dict[str, Any] | None) -> DiagramDetail:
    """Make version n+1 (a new canvas object when the canvas changes, else the current
    one); NotFound for a missing or foreign diagram. Nothing is left over on failure."""
    await _diagram_row(resources, owner_id, diagram_id)  # 404 before writing anything
    pool = await resources.db()
    key: str | None = None
    if canvas is not None:
        data, sha256 = encode_canvas(canvas)
        key = f"{diagram_id}/{uuid.uuid4().hex}.json"
        await objects.reserve(resources, objects.DIAGRAMS_BUCKET, key)
        await objects.put_bytes(resources.s3, objects.DIAGRAMS_BUCKET, key, data,
                                CANVAS_TYPE, sha256)
    try:
        async with pool.connection() as conn, conn.transaction():
            if key is not None:
                await objects.release(conn, objects.DIAGRAMS_BUCKET, key)
                await outbox.record(conn, objects.DIAGRAMS_BUCKET, key, sha256, len(data),
                                    CANVAS_TYPE)
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(
                _DIAGRAM + " WHERE d.id = %s AND d.owner_id = %s FOR UPDATE OF d",
                (diagram_id, owner_id))
            current = await cursor.fetchone()
            if current is None:
                raise NotFound("diagram not found")
            version = current["current_version"] + 1
            new_name = name if name is not None else current["name"]
            stored = (key, sha256, len(data)) if key is not None else (
                current["object_key"], current["sha256"], current["size_bytes"])
            await conn.execute(
                "INSERT INTO diagram_versions (diagram_id, version, name, object_key, sha256, "
                "size_bytes, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (diagram_id, version, new_name, *stored, owner_id))
            await conn.execute(
                "UPDATE diagrams SET name = %s, current_version = %s, updated_at = now() "
                "WHERE id = %s", (new_name, version, diagram_id))
            await cursor.execute(_DIAGRAM + " WHERE d.id = %s", (diagram_id,))
            row = await cursor.fetchone()
    except BaseException:
        if key is not None:
            await objects.undo_put(resources.s3, objects.DIAGRAMS_BUCKET, key)
        raise
    assert row is not None
    shown = canvas if canvas is not None else await _canvas(resources, row)
    return DiagramDetail(**_fields(row), canvas=shown)


async def delete_diagram(resources: Resources, owner_id: int, diagram_id: uuid.UUID) -> None:
    """Delete the diagram, its versions and uploads; their objects are queued for deletion
    in the same transaction, then removed. NotFound for a missing or foreign diagram."""
    pool = await resources.db()
    async with pool.connection() as conn, conn.transaction():
        found = await (await conn.execute(
            "SELECT 1 FROM diagrams WHERE id = %s AND owner_id = %s FOR UPDATE",
            (diagram_id, owner_id))).fetchone()
        if found is None:
            raise NotFound("diagram not found")
        await conn.execute(
            "INSERT INTO object_deletions (bucket, object_key) "
            "SELECT DISTINCT %s, object_key FROM diagram_versions WHERE diagram_id = %s "
            "UNION SELECT %s, object_key FROM uploads WHERE diagram_id = %s "
            "ON CONFLICT DO NOTHING",
            (objects.DIAGRAMS_BUCKET, diagram_id, objects.UPLOADS_BUCKET, diagram_id))
        await conn.execute("DELETE FROM diagrams WHERE id = %s", (diagram_id,))
    await objects.purge_queued(resources)  # these objects, and any left by an S3 outage


async def list_versions(resources: Resources, owner_id: int,
                        diagram_id: uuid.UUID) -> VersionsPublic:
    """Every version of the diagram, oldest first; NotFound."""
    pool = await resources.db()
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(_VERSION + " WHERE d.id = %s AND d.owner_id = %s "
                             "ORDER BY v.version", (diagram_id, owner_id))
        rows = await cursor.fetchall()
    if not rows:
        raise NotFound("diagram not found")
    return VersionsPublic(versions=[VersionPublic(**_fields(row)) for row in rows],
                          count=len(rows))


async def get_version(resources: Resources, owner_id: int, diagram_id: uuid.UUID,
                      version: int) -> VersionDetail:
    """One version with its canvas (checked against its sha256); NotFound."""
    pool = await resources.db()
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(_VERSION + " WHERE d.id = %s AND d.owner_id = %s "
                             "AND v.version = %s", (diagram_id, owner_id, version))
        row = await cursor.fetchone()
    if row is None:
        raise NotFound("diagram version not found")
    return VersionDetail(**_fields(row), canvas=await _canvas(resources, row))
