"""Routes of the diagram service: /api/diagrams, versions and uploads (own diagrams only)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, File, Path, Query, UploadFile, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from autograph.services.common.deps import CurrentUser, ResourcesDep
from autograph.services.common.security import Principal
from autograph.services.common.validation import served_content_type
from autograph.services.diagrams import store, uploads
from autograph.services.diagrams.models import (
    DiagramCreate,
    DiagramDetail,
    DiagramsPublic,
    DiagramUpdate,
    UploadPublic,
    UploadsPublic,
    VersionDetail,
    VersionsPublic,
)

router = APIRouter(prefix="/api/diagrams", tags=["diagrams"])

DiagramId = Annotated[UUID, Path(description="the diagram's id")]


def _uid(user: Principal) -> int:
    assert user.user_id is not None  # CurrentUser is always a session user
    return user.user_id


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_diagram(body: DiagramCreate, user: CurrentUser,
                         resources: ResourcesDep) -> DiagramDetail:
    """Create a diagram (version 1)."""
    return await store.create_diagram(resources, _uid(user), body.name, body.canvas)


@router.get("")
async def list_diagrams(
    user: CurrentUser, resources: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> DiagramsPublic:
    """Your diagrams, most recently updated first."""
    return await store.list_diagrams(resources, _uid(user), limit, offset)


@router.get("/{diagram_id}")
async def get_diagram(diagram_id: DiagramId, user: CurrentUser,
                      resources: ResourcesDep) -> DiagramDetail:
    """One of your diagrams with its current canvas."""
    return await store.get_diagram(resources, _uid(user), diagram_id)


@router.put("/{diagram_id}")
async def update_diagram(diagram_id: DiagramId, body: DiagramUpdate, user: CurrentUser,
                         resources: ResourcesDep) -> DiagramDetail:
    """Rename and/or replace the canvas; makes a new version."""
    return await store.update_diagram(resources, _uid(user), diagram_id, body.name,
                                      body.canvas)


@router.delete("/{diagram_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_diagram(diagram_id: DiagramId, user: CurrentUser,
                         resources: ResourcesDep) -> None:
    """Delete a diagram with its versions and uploads."""
    await store.delete_diagram(resources, _uid(user), diagram_id)


@router.get("/{diagram_id}/versions")
async def list_versions(diagram_id: DiagramId, user: CurrentUser,
                        resources: ResourcesDep) -> VersionsPublic:
    """Every version of a diagram, oldest first."""
    return await store.list_versions(resources, _uid(user), diagram_id)


@router.get("/{diagram_id}/versions/{version}")
async def get_version(diagram_id: DiagramId,
                      version: Annotated[int, Path(ge=1, le=2_000_000_000)],
                      user: CurrentUser, resources: ResourcesDep) -> VersionDetail:
    """One version with its canvas."""
    return await store.get_version(resources, _uid(user), diagram_id, version)


@router.post("/{diagram_id}/uploads", status_code=status.HTTP_201_CREATED)
async def create_upload(diagram_id: DiagramId, file: Annotated[UploadFile, File()],
                        user: CurrentUser, resources: ResourcesDep) -> UploadPublic:
    """Attach a file (multipart field ``file``); its content type is kept."""
    try:
        return await uploads.create_upload(resources, _uid(user), diagram_id, file.file,
                                           file.filename, file.content_type)
    finally:
        await file.close()


@router.get("/{diagram_id}/uploads")
async def list_uploads(diagram_id: DiagramId, user: CurrentUser,
                       resources: ResourcesDep) -> UploadsPublic:
    """The files attached to a diagram."""
    return await uploads.list_uploads(resources, _uid(user), diagram_id)


@router.get("/{diagram_id}/uploads/{upload_id}", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}})
async def download_upload(diagram_id: DiagramId, upload_id: UUID, user: CurrentUser,
                          resources: ResourcesDep) -> StreamingResponse:
    """The bytes of an upload, with its recorded sha256, as an attachment; its content type
    when on a safe allowlist, else application/octet-stream (always ``nosniff``)."""
    record, chunks = await uploads.open_upload(resources, _uid(user), diagram_id, upload_id)
    return StreamingResponse(
        iterate_in_threadpool(chunks), media_type=served_content_type(record.content_type),
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Content-Length": str(record.size_bytes),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(record.filename)}",
            "X-Checksum-SHA256": record.sha256,
        },
    )


@router.delete("/{diagram_id}/uploads/{upload_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_upload(diagram_id: DiagramId, upload_id: UUID, user: CurrentUser,
                        resources: ResourcesDep) -> None:
    """Delete an upload."""
    await uploads.delete_upload(resources, _uid(user), diagram_id, upload_id)
