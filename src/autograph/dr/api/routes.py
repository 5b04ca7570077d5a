"""What the gateway mounts from the DR core: the admin API under ``/api/admin`` and ``/metrics``.

Every admin route needs the admin API key or an admin session (401 / 403), given once here.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from autograph.dr.api import (
    audit,
    backups,
    buckets,
    console,
    drill_runs,
    metrics,
    monitoring,
    recovery,
    snapshots,
)
from autograph.services.common.deps import get_admin

admin_router = APIRouter(prefix="/api/admin", dependencies=[Depends(get_admin)])
admin_router.include_router(backups.router)
admin_router.include_router(buckets.router)
admin_router.include_router(snapshots.router)
admin_router.include_router(monitoring.router)
admin_router.include_router(drill_runs.router)
admin_router.include_router(console.router)
admin_router.include_router(audit.router)
admin_router.include_router(recovery.router)

AuditMiddleware = audit.AuditMiddleware
"""Records admin actions; the gateway adds it to its app."""

routers: list[APIRouter] = [admin_router, audit.public_router, metrics.router]
