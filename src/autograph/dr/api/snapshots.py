"""Bucket-snapshot routes of the admin API (SPEC §7), under ``/api/admin/minio/snapshots``:
list, create, restore, verify. Like the archive routes they need only S3 and the backup storage
(never PostgreSQL or Redis, with the API key), answer 409 while another snapshot operation
runs, and take ``wait=false`` for a job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from autograph.dr.api.support import cached, run_or_submit
from autograph.dr.buckets.models import validate_bucket
from autograph.dr.buckets.snapshots.manager import SnapshotManager
from autograph.dr.buckets.snapshots.store import parse_name
from autograph.errors import InvalidInput, NotFound
from autograph.services.common.deps import ResourcesDep, get_admin

router = APIRouter(tags=["admin: bucket snapshots"], dependencies=[Depends(get_admin)])

Wait = Annotated[bool, Query(description="false: answer 202 with a job id at once")]
Bucket = Annotated[str | None, Query(description="an application bucket")]


def get_snapshot_manager(request: Request, resources: ResourcesDep) -> SnapshotManager:
    """The app's SnapshotManager (built on first use)."""
    return cached(request, "snapshots",
                  lambda: SnapshotManager(resources.settings, resources.creds))


Manager = Annotated[SnapshotManager, Depends(get_snapshot_manager)]


@router.get("/minio/snapshots")
def list_snapshots(manager: Manager, bucket: Bucket = None,
                   limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> JSONResponse:
    """Snapshots newest first, with the tiers holding each."""
    listing = manager.list(bucket)
    return JSONResponse({**listing, "snapshots": listing["snapshots"][:limit]})


@router.post("/minio/snapshots/create", status_code=201,
             responses={202: {"description": "job started (wait=false)"}})
def create_snapshots(manager: Manager, bucket: Bucket = None, wait: Wait = True) -> JSONResponse:
    """Snapshot one application bucket (or all of them) now; 201 with what was stored."""
    chosen = [manager.check_source(bucket)] if bucket else list(manager.settings.app_buckets)

    def work(_progress: Any, lock: Any) -> dict[str, Any]:  # the held lock serves the first
        return {"snapshots": [manager.take(name, lock=lock if i == 0 else None).as_dict()
                              for i, name in enumerate(chosen)]}

    return run_or_submit("minio.snapshots.create", work, wait=wait,
                         acquire=lambda: manager.acquire("snapshot", ",".join(chosen)),
                         status_code=201)


@router.post("/minio/snapshots/restore",
             responses={202: {"description": "job started (wait=false)"}})
def restore_snapshot(
    manager: Manager,
    snapshot_name: Annotated[str | None, Query(description="a snapshot name")] = None,
    bucket: Annotated[str | None, Query(
        description="instead of a name: the newest snapshot of this bucket")] = None,
    at: Annotated[datetime | None, Query(
        description="with bucket: the newest snapshot taken at or before this time")] = None,
    target_bucket: Annotated[str | None, Query(
        description="default: the snapshot's bucket")] = None,
    overwrite: Annotated[bool, Query(description="replace existing keys")] = False,
    wait: Wait = True,
) -> JSONResponse:
    """Put a bucket back as a snapshot recorded it: restored/skipped/failed counts."""
    if (snapshot_name is None) == (bucket is None):
        raise InvalidInput("give snapshot_name, or bucket (with at for a past state)")
    if at is not None and at.tzinfo is None:
        raise InvalidInput("at needs a time zone (e.g. 2026-01-05T09:00:00Z)")
    if snapshot_name is None:
        assert bucket is not None
        snapshot_name = manager.latest(validate_bucket(bucket), at)
        if snapshot_name is None:
            raise NotFound(f"no snapshot of {bucket}")
    name = snapshot_name
    parse_name(name)
    if target_bucket is not None:
        validate_bucket(target_bucket, "target bucket")
    manager.load(name)  # 404 / 400 before a job starts
    return run_or_submit(
        "minio.snapshots.restore",
        lambda _progress, lock: manager.restore(name, target_bucket=target_bucket,
                                                overwrite=overwrite, lock=lock).as_dict(),
        wait=wait, acquire=lambda: manager.acquire("restore", name))


@router.post("/minio/snapshots/verify")
def verify_snapshot(manager: Manager,
                    snapshot_name: Annotated[str, Query(description="a snapshot name")],
                    deep: bool = False) -> JSONResponse:
    """Every blob present in each tier (``deep``: local blobs hashed); 422 unless
    restorable."""
    result = manager.verify(snapshot_name, deep=deep)
    return JSONResponse(result, status_code=200 if result["restorable"] else 422)
