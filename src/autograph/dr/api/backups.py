"""The admin/DR API (SPEC §4): database backups and jobs.

Every route needs the admin API key or an admin session (401 / 403). Listing and restoring need
only the backup storage (and, to restore, PostgreSQL itself), never Redis or the application
database, so they answer during a disaster. Thin: the managers do the work.

"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from autograph.dr.api.support import cached, required_name, run_or_submit
from autograph.dr.models import BackupEntry, BackupList, jsonable, validate_name
from autograph.dr.ops import jobs
from autograph.dr.postgres import DatabaseBackupManager
from autograph.services.common.deps import ResourcesDep

router = APIRouter(tags=["admin: backups"])

Wait = Annotated[bool, Query(description="false: answer 202 with a job id at once")]
Name = Annotated[str | None, Query(description="backup name")]


def get_database_manager(request: Request, resources: ResourcesDep) -> DatabaseBackupManager:
    """The app's DatabaseBackupManager (built on first use)."""
    return cached(request, "database",
                  lambda: DatabaseBackupManager(resources.settings, resources.creds))


Manager = Annotated[DatabaseBackupManager, Depends(get_database_manager)]


@router.get("/backup/list", response_model=BackupList)
def list_backups(manager: Manager) -> BackupList:
    """Database backups in both tiers, newest first, with where each copy is."""
    return manager.list()


@router.post("/backup/create", status_code=201, response_model=BackupEntry,
             responses={202: {"description": "job started (wait=false)"}})
def create_backup(manager: Manager, backup_name: Name = None, verify: bool = True,
                  wait: Wait = True) -> JSONResponse:
    """Dump the database, verify it, copy it to S3; 201 with the backup."""
    name = validate_name(backup_name) if backup_name else None
    if name:
        manager.catalog.validate_new(name)
    return run_or_submit(
        "backup.create",
        lambda progress, lock: manager.create(name, verify=verify, progress=progress,
                                              lock=lock),
        wait=wait, acquire=lambda: manager.acquire("backup", name or ""), status_code=201)


@router.post("/backup/restore", responses={202: {"description": "job started (wait=false)"}})
def restore_backup(manager: Manager, backup_name: Name = None,
                   wait: Wait = True) -> JSONResponse:
    """Restore into a new database, check row counts, swap it in (previous kept)."""
    name = required_name(backup_name)
    manager.get(name)
    return run_or_submit(
        "backup.restore",
        lambda progress, lock: manager.restore(name, progress=progress, lock=lock),
        wait=wait, acquire=lambda: manager.acquire("restore", name))


@router.post("/backup/verify", response_model=BackupEntry,
             responses={202: {"description": "job started (wait=false)"},
                        422: {"description": "verification failed (recorded in the manifest)"}})
def verify_backup(manager: Manager, backup_name: Name = None, deep: bool = False,
                  wait: Wait = True) -> JSONResponse:
    """Check checksum and archive (deep: restore to a scratch database); 422 if it fails."""
    name = required_name(backup_name)
    manager.get(name)
    return run_or_submit(
        "backup.verify",
        lambda progress, lock: manager.verify(name, deep=deep, progress=progress, lock=lock),
        wait=wait, acquire=lambda: manager.acquire("verify", name))


@router.post("/backup/sync")
def sync_backups(manager: Manager, wait: Wait = True) -> JSONResponse:
    """Upload local backups missing from S3; remove interrupted ones."""
    return run_or_submit(
        "backup.sync", lambda progress, lock: manager.sync(progress=progress, lock=lock),
        wait=wait, acquire=lambda: manager.acquire("sync"))


@router.post("/backup/rollback")
def rollback_restore(manager: Manager,
                     database: Annotated[str | None, Query(
                         description="a kept <db>__pre_restore_<ts> (default: newest)")] = None,
                     ) -> JSONResponse:
    """Swap the database kept by the last restore back into place."""
    if database is not None:
        validate_name(database, "database name")
    return JSONResponse(manager.rollback(database))


@router.delete("/backup/{backup_name:path}")
def delete_backup(manager: Manager, backup_name: str) -> JSONResponse:
    """Delete a backup from both tiers."""
    name = required_name(backup_name)
    return JSONResponse({"deleted": name, "locations": manager.delete(name)})


@router.get("/jobs/{job_id}", response_model=jobs.Job, tags=["admin: jobs"])
def get_job(job_id: str) -> JSONResponse:
    """A background job: running, succeeded (with its result) or failed (with the error)."""
    return JSONResponse(jsonable(jobs.registry.get(job_id)))
