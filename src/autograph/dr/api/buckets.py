"""Bucket-backup routes of the admin API (SPEC §4), mounted by :mod:`autograph.dr.api.routes`
under ``/api/admin``: buckets, create, list, restore, verify, delete, sync. Thin: the manager
works.

Every route needs the admin API key or an admin session (401 / 403); listing and restoring need
only S3 and the backup storage, never PostgreSQL or Redis (with the API key).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from autograph.dr.api.support import cached, required_name, run_or_submit
from autograph.dr.buckets.manager import MinIOBucketBackupManager
from autograph.dr.buckets.models import BucketList, BucketRestoreResult
from autograph.dr.models import BackupEntry, BackupList, jsonable, validate_name
from autograph.errors import InvalidInput, NotFound
from autograph.services.common.deps import ResourcesDep, get_admin

router = APIRouter(tags=["admin: bucket backups"], dependencies=[Depends(get_admin)])

Wait = Annotated[bool, Query(description="false: answer 202 with a job id at once")]
Name = Annotated[str | None, Query(description="backup name")]
Bucket = Annotated[str | None, Query(description="bucket (default: every application bucket)")]


def get_bucket_manager(request: Request, resources: ResourcesDep) -> MinIOBucketBackupManager:
    """The app's MinIOBucketBackupManager (built on first use, its S3 clients reused)."""
    return cached(
        request,
        "bucket",
        lambda: MinIOBucketBackupManager(resources.settings, resources.creds),
    )


Manager = Annotated[MinIOBucketBackupManager, Depends(get_bucket_manager)]


@router.get("/minio/buckets", response_model=BucketList)
def list_buckets(manager: Manager) -> BucketList:
    """Buckets of the application S3 server with object counts, sizes and newest backup."""
    return manager.buckets()


@router.post(
    "/minio/backup/create",
    status_code=201,
    responses={
        201: {"description": 'the backup, or {"backups": [...]} for all buckets'},
        202: {"description": "job started (wait=false)"},
    },
)
def create_backup(
    manager: Manager,
    bucket: Bucket = None,
    backup_name: Name = None,
    verify: bool = True,
    wait: Wait = True,
) -> JSONResponse:
    """Archive one bucket (or every application bucket), verify, copy to S3; 201."""
    if bucket is not None:
        manager.check_source(bucket)
        if not manager.source.bucket_exists(bucket):
            raise NotFound(f"no bucket {bucket} on the application S3 server")
    name = validate_name(backup_name) if backup_name else None
    if name is not None:
        if bucket is None:
            raise InvalidInput("backup_name names one backup: give bucket too")
        manager.catalog.validate_new(name)
    if bucket is None:
        return run_or_submit(
            "minio.backup.create",
            lambda progress, lock: {
                "backups": [
                    jsonable(e)
                    for e in manager.create_all(verify=verify, progress=progress, lock=lock)
                ]
            },
            wait=wait,
            acquire=lambda: manager.acquire("backup", "all buckets"),
            status_code=201,
        )
    chosen: str = bucket
    return run_or_submit(
        "minio.backup.create",
        lambda progress, lock: manager.create(
            chosen, name, verify=verify, progress=progress, lock=lock
        ),
        wait=wait,
        acquire=lambda: manager.acquire("backup", chosen),
        status_code=201,
    )


@router.get("/minio/backup/list", response_model=BackupList)
def list_backups(
    manager: Manager,
    bucket: Annotated[str | None, Query(description="only backups of this bucket")] = None,
) -> BackupList:
    """Bucket backups in both tiers, newest first, with where each copy is."""
    return manager.list(bucket)


@router.post(
    "/minio/backup/restore",
    response_model=BucketRestoreResult,
    responses={202: {"description": "job started (wait=false)"}},
)
def restore_backup(
    manager: Manager,
    backup_name: Name = None,
    target_bucket: Annotated[
        str | None, Query(description="default: the bucket the backup was taken from")
    ] = None,
    overwrite: Annotated[
        bool, Query(description="replace existing keys (false: skip them)")
    ] = False,
    wait: Wait = True,
) -> JSONResponse:
    """Restore a bucket archive (checksum checked first): restored/skipped/failed counts."""
    name = required_name(backup_name)
    if target_bucket is not None:
        manager.check_target(target_bucket)
    manager.get(name)
    return run_or_submit(
        "minio.backup.restore",
        lambda progress, lock: manager.restore(
            name, target_bucket, overwrite=overwrite, progress=progress, lock=lock
        ),
        wait=wait,
        acquire=lambda: manager.acquire("restore", name),
    )


@router.post(
    "/minio/backup/verify",
    response_model=BackupEntry,
    responses={
        202: {"description": "job started (wait=false)"},
        422: {"description": "verification failed (recorded in the manifest)"},
    },
)
def verify_backup(manager: Manager, backup_name: Name = None, wait: Wait = True) -> JSONResponse:
    """Read every copy in full: gzip CRC, tar structure, each object's sha256; 422 if bad."""
    name = required_name(backup_name)
    manager.get(name)
    return run_or_submit(
        "minio.backup.verify",
        lambda progress, lock: manager.verify(name, progress=progress, lock=lock),
        wait=wait,
        acquire=lambda: manager.acquire("verify", name),
    )


@router.post("/minio/backup/sync")
def sync_backups(manager: Manager, wait: Wait = True) -> JSONResponse:
    """Upload local bucket backups missing from S3; remove interrupted ones."""
    return run_or_submit(
        "minio.backup.sync",
        lambda progress, lock: manager.sync(progress=progress, lock=lock),
        wait=wait,
        acquire=lambda: manager.acquire("sync"),
    )


@router.delete("/minio/backup/{backup_name}")
def delete_backup(manager: Manager, backup_name: str) -> JSONResponse:
    """Delete a bucket backup from both tiers."""
    name = required_name(backup_name)
    return JSONResponse({"deleted": name, "locations": manager.delete(name)})
