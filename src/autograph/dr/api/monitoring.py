"""Admin routes for monitoring: ``GET /api/admin/alerts`` and ``GET /api/admin/dr/status``.

Mounted by :mod:`autograph.dr.api.routes` (paths are relative to ``/api/admin``, which requires the
admin token). Both answer from the backup storage and the monitor's state only, so they work
while PostgreSQL and Redis are down.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from autograph.dr.alerts.models import Alert
from autograph.dr.daemon import Runtime, collect_status, runtime_for
from autograph.dr.monitor.status import DrStatus, read_alert_state
from autograph.services.common.deps import ResourcesDep

router = APIRouter(tags=["admin: monitoring"])


class AlertsPublic(BaseModel):
    """Alerts firing now and the most recent ones (firing or resolved), newest first."""

    active: list[Alert]
    recent: list[Alert]
    monitor: str = Field(description="'leader' (this process runs the monitor), 'follower' "
                                     "(another one does), or 'off'")
    channels: list[str] = Field(default_factory=list)
    failed_deliveries: dict[str, int] = Field(default_factory=dict)


def _runtime(resources: Any) -> Runtime | None:
    return runtime_for(resources)


@router.get("/alerts", response_model=AlertsPublic)
def list_alerts(resources: ResourcesDep,
                limit: Annotated[int, Query(ge=1, le=500)] = 50) -> AlertsPublic:
    """Active and recent alerts."""
    runtime = _runtime(resources)
    if runtime is None:
        active, recent = read_alert_state(resources.settings.dr_dir)
        return AlertsPublic(active=active, recent=recent[:limit], monitor="off")
    active, recent = runtime.alerts(limit)
    dispatcher = runtime.dispatcher
    return AlertsPublic(
        active=active, recent=recent, monitor="leader" if runtime.is_leader else "follower",
        channels=[c.name for c in runtime.channels_in_use()],
        failed_deliveries=dispatcher.failed_deliveries() if dispatcher else {})


@router.get("/dr/status", response_model=DrStatus)
def dr_status(resources: ResourcesDep) -> DrStatus:
    """Per backup source: last success and its age against the RPO target, next scheduled
    run, verification; active alerts; last and next drill."""
    runtime = _runtime(resources)
    if runtime is not None:
        return runtime.status()
    return collect_status(resources.settings, resources.creds)
