"""What the gateway mounts from the DR core: the admin API under ``/api/admin`` and ``/metrics``.

Every admin route needs the admin API key or an admin session (401 / 403), given once here.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from autograph.dr.api import backups, buckets, metrics, monitoring, snapshots
from autograph.services.common.deps import get_admin

admin_router = APIRouter(prefix="/api/admin", dependencies=[Depends(get_admin)])
admin_router.include_router(backups.router)
admin_router.include_router(buckets.router)
admin_router.include_router(snapshots.router)
admin_router.include_router(monitoring.router)

routers: list[APIRouter] = [admin_router, metrics.router]
