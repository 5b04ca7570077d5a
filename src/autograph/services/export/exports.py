"""Exports: a diagram rendered by the SVG renderer and stored in the ``exports`` bucket.

The object is the record. Each export is one object ``users/<owner>/<export id>.<format>``
whose user metadata holds the diagram id, version, name, format, owner, sha256 and creation
time. There is no database row to disagree with the object, and a bucket backup (which keeps
user metadata) restores the exports together with their records. Another user's export is
simply not under their prefix (404).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from botocore.exceptions import ClientError

from autograph.clock import Clock, isoformat, utc_now
from autograph.config import Settings
from autograph.errors import DependencyDown, IntegrityError, InvalidInput, NotFound
from autograph.services.common.resources import Resources
from autograph.services.diagrams import outbox
from autograph.services.export.diagram_api import DiagramAPI

EXPORTS_BUCKET = "exports"
FORMATS = {"svg": "image/svg+xml", "png": "image/png", "pdf": "application/pdf"}
RENDER_TIMEOUT_SECONDS = 60.0  # and 3 s to connect
MAX_LISTED = 200


@dataclass(frozen=True)
class ExportRecord:
    """What is known of one stored export (from its object's metadata)."""

    id: uuid.UUID
    owner_id: int
    diagram_id: uuid.UUID
    diagram_name: str
    version: int
    format: str
    content_type: str
    size_bytes: int
    sha256: str
    created_at: str


def object_key(owner_id: int, export_id: uuid.UUID, fmt: str) -> str:
    """The object key of an export."""
    return f"users/{owner_id}/{export_id}.{fmt}"


async def render(settings: Settings, token: str, canvas: dict[str, Any], fmt: str,
                 title: str) -> bytes:
    """The canvas rendered by the SVG renderer service in ``fmt``.

    DependencyDown when the renderer is unreachable or fails; InvalidInput when it refuses the
    canvas.
    """
    import httpx  # imported on first use: it costs ~40 ms at every start of the service

    url = f"{settings.service_url('svg')}/api/render/{fmt}"
    timeout = httpx.Timeout(RENDER_TIMEOUT_SECONDS, connect=3.0)
    try:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            response = await client.post(url, json={"canvas": canvas, "title": title[:200]},
                                         headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise DependencyDown(f"the SVG renderer is unavailable ({type(exc).__name__})") \
            from None
    if response.status_code in (400, 422):
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:200]
        raise InvalidInput(f"the diagram cannot be rendered: {detail}")
    if not response.is_success:
        raise DependencyDown(f"the SVG renderer answered {response.status_code}")
    return response.content


async def create_export(settings: Settings, s3: Any, token: str, owner_id: int,
                        diagram_id: uuid.UUID, fmt: str, version: int | None = None,
                        clock: Clock = utc_now,
                        resources: Resources | None = None) -> ExportRecord:
    """Render the diagram (its current version, or ``version``) and store it with its record
    (recorded in the object outbox too when ``resources`` is given).

    Raises NotFound for a missing or foreign diagram/version, InvalidInput for an unknown
    format, DependencyDown when the diagram service, renderer or S3 is unavailable.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}")
    api = DiagramAPI(settings, token)
    diagram = await (api.version(diagram_id, version) if version else api.get(diagram_id))
    number = int(diagram.get("version") or diagram.get("current_version") or 1)
    data = await render(settings, token, diagram.get("canvas") or {}, fmt, diagram["name"])
    export_id = uuid.uuid4()
    record = ExportRecord(
        id=export_id, owner_id=owner_id, diagram_id=diagram_id, diagram_name=diagram["name"],
        version=number, format=fmt, content_type=FORMATS[fmt], size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(), created_at=isoformat(clock()),
    )
    await asyncio.to_thread(
        s3.put_object, Bucket=EXPORTS_BUCKET, Key=object_key(owner_id, export_id, fmt),
        Body=data, ContentType=record.content_type, Metadata=_metadata(record))
    if resources is not None:  # the replicator ships it within seconds
        await outbox.record_alone(resources, EXPORTS_BUCKET,
                                  object_key(owner_id, export_id, fmt), record.sha256,
                                  record.size_bytes, record.content_type, _metadata(record))
    return record


def _metadata(record: ExportRecord) -> dict[str, str]:
    return {"owner-id": str(record.owner_id), "diagram-id": str(record.diagram_id),
            "diagram-name": quote(record.diagram_name, safe=""), "version": str(record.version),
            "format": record.format, "sha256": record.sha256, "created-at": record.created_at}


def _record(export_id: uuid.UUID, head: dict[str, Any]) -> ExportRecord:
    meta = head.get("Metadata", {})
    fmt = meta.get("format", "")
    return ExportRecord(
        id=export_id, owner_id=int(meta.get("owner-id", 0)),
        diagram_id=uuid.UUID(meta.get("diagram-id", str(uuid.UUID(int=0)))),
        diagram_name=unquote(meta.get("diagram-name", "")), version=int(meta.get("version", 0)),
        format=fmt, content_type=FORMATS.get(fmt, "application/octet-stream"),
        size_bytes=int(head.get("ContentLength", 0)), sha256=meta.get("sha256", ""),
        created_at=meta.get("created-at", ""),
    )


async def _find_key(s3: Any, owner_id: int, export_id: uuid.UUID) -> str:
    prefix = f"users/{owner_id}/{export_id}."
    listed = await asyncio.to_thread(s3.list_objects_v2, Bucket=EXPORTS_BUCKET, Prefix=prefix,
                                     MaxKeys=2)
    keys = [item["Key"] for item in listed.get("Contents", [])
            if item["Key"][len(prefix):] in FORMATS]
    if not keys:
        raise NotFound("export not found")
    return str(keys[0])


async def get_export(s3: Any, owner_id: int, export_id: uuid.UUID) -> ExportRecord:
    """The record of one of the owner's exports; NotFound otherwise."""
    key = await _find_key(s3, owner_id, export_id)
    head = await asyncio.to_thread(s3.head_object, Bucket=EXPORTS_BUCKET, Key=key)
    return _record(export_id, head)


async def read_export(s3: Any, owner_id: int,
                      export_id: uuid.UUID) -> tuple[ExportRecord, bytes]:
    """The record and bytes of an export, checked against the recorded sha256.

    NotFound when absent (or gone between listing and reading), IntegrityError on mismatch.
    """
    key = await _find_key(s3, owner_id, export_id)
    try:
        response = await asyncio.to_thread(s3.get_object, Bucket=EXPORTS_BUCKET, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise NotFound("export not found") from None
        raise
    data: bytes = await asyncio.to_thread(response["Body"].read)
    record = _record(export_id, response)
    if hashlib.sha256(data).hexdigest() != record.sha256:
        raise IntegrityError(f"export {export_id} does not match its recorded sha256")
    return record, data


async def list_exports(s3: Any, owner_id: int,
                       diagram_id: uuid.UUID | None = None) -> list[ExportRecord]:
    """The owner's most recent exports (at most 200), newest first, optionally of one
    diagram."""
    listed = await asyncio.to_thread(s3.list_objects_v2, Bucket=EXPORTS_BUCKET,
                                     Prefix=f"users/{owner_id}/", MaxKeys=1000)
    items = sorted(listed.get("Contents", []), key=lambda item: item["LastModified"],
                   reverse=True)[:MAX_LISTED]

    async def one(key: str) -> ExportRecord | None:
        name = key.rsplit("/", 1)[-1]
        try:
            export_id = uuid.UUID(name.split(".", 1)[0])
            head = await asyncio.to_thread(s3.head_object, Bucket=EXPORTS_BUCKET, Key=key)
        except (ValueError, ClientError):
            return None
        return _record(export_id, head)

    records = await asyncio.gather(*(one(item["Key"]) for item in items))
    return [r for r in records
            if r is not None and (diagram_id is None or r.diagram_id == diagram_id)]


async def delete_export(s3: Any, owner_id: int, export_id: uuid.UUID) -> None:
    """Delete one of the owner's exports; NotFound otherwise."""
    key = await _find_key(s3, owner_id, export_id)
    await asyncio.to_thread(s3.delete_object, Bucket=EXPORTS_BUCKET, Key=key)

