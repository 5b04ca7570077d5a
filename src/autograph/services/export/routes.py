"""Routes of the export service: ``/api/exports`` (create, list, read, download, delete)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Query, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from autograph.services.common.deps import CurrentUser, ResourcesDep, SettingsDep, TokenDep
from autograph.services.common.security import Principal
from autograph.services.export import exports
from autograph.services.export.exports import ExportRecord

router = APIRouter(prefix="/api/exports", tags=["exports"])


class ExportCreate(BaseModel):
    """Which diagram (and optionally which version) to export, in which format."""

    model_config = ConfigDict(extra="forbid")

    diagram_id: UUID
    format: Literal["svg", "png", "pdf"]
    version: int | None = Field(default=None, ge=1, le=2_000_000_000)


class ExportPublic(BaseModel):
    """A stored export; ``download_url`` answers its bytes."""

    id: UUID
    diagram_id: UUID
    diagram_name: str
    version: int
    format: str
    content_type: str
    size_bytes: int
    sha256: str
    created_at: datetime
    download_url: str


class ExportsPublic(BaseModel):
    """The caller's exports, newest first."""

    exports: list[ExportPublic]
    count: int


def _public(record: ExportRecord) -> ExportPublic:
    return ExportPublic(
        id=record.id, diagram_id=record.diagram_id, diagram_name=record.diagram_name,
        version=record.version, format=record.format, content_type=record.content_type,
        size_bytes=record.size_bytes, sha256=record.sha256,
        created_at=datetime.fromisoformat(record.created_at.replace("Z", "+00:00")),
        download_url=f"/api/exports/{record.id}",
    )


def _uid(user: Principal) -> int:
    assert user.user_id is not None  # CurrentUser is always a session user
    return user.user_id


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_export(body: ExportCreate, user: CurrentUser, token: TokenDep,
                        settings: SettingsDep, resources: ResourcesDep) -> ExportPublic:
    """Render one of your diagrams as SVG, PNG or PDF and store it in ``exports``."""
    record = await exports.create_export(settings, resources.s3, token, _uid(user),
                                         body.diagram_id, body.format, body.version,
                                         resources=resources)
    return _public(record)


@router.get("")
async def list_exports(user: CurrentUser, resources: ResourcesDep,
                       diagram_id: Annotated[UUID | None, Query()] = None) -> ExportsPublic:
    """Your most recent exports (at most 200), optionally of one diagram."""
    records = await exports.list_exports(resources.s3, _uid(user), diagram_id)
    return ExportsPublic(exports=[_public(r) for r in records], count=len(records))


@router.get("/{export_id}/info")
async def export_info(export_id: UUID, user: CurrentUser,
                      resources: ResourcesDep) -> ExportPublic:
    """The record of one of your exports."""
    return _public(await exports.get_export(resources.s3, _uid(user), export_id))


@router.get("/{export_id}", response_class=Response, responses={200: {"content": {
    "image/svg+xml": {}, "image/png": {}, "application/pdf": {}}}})
async def download_export(export_id: UUID, user: CurrentUser,
                          resources: ResourcesDep) -> Response:
    """Download an export (checked against its recorded sha256)."""
    record, data = await exports.read_export(resources.s3, _uid(user), export_id)
    filename = f"{record.diagram_name or 'diagram'}-v{record.version}.{record.format}"
    return Response(data, media_type=record.content_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}",
        "X-Checksum-SHA256": record.sha256,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    })


@router.delete("/{export_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_export(export_id: UUID, user: CurrentUser, resources: ResourcesDep) -> None:
    """Delete one of your exports."""
    await exports.delete_export(resources.s3, _uid(user), export_id)
