"""``GET /api/admin/recovery/live``: the steps of the recovery running now, for the console.

Read from the recovery's state file only (never PostgreSQL, Redis or S3), so it answers while
those are being restored. Mounted by :mod:`autograph.dr.api.routes` (admin only).
"""

from __future__ import annotations

from fastapi import APIRouter

from autograph.dr.recovery.live import LiveRecovery, read_live
from autograph.services.common.deps import ResourcesDep

router = APIRouter(tags=["admin: recovery"])


@router.get("/recovery/live", response_model=LiveRecovery)
def live_recovery(resources: ResourcesDep) -> LiveRecovery:
    """The running recovery's steps (name, status, start, duration, detail), an interrupted
    one waiting to be resumed, or ``none``."""
    return read_live(resources.settings.dr_dir)
