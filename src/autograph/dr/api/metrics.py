"""``GET /metrics``: the DR status as Prometheus metrics (admin token unless public)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Security
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST

from autograph.dr.daemon import collect_status, runtime_for
from autograph.dr.monitor.metrics import SCRAPE_CACHE_SECONDS, render
from autograph.dr.monitor.status import DrStatus
from autograph.services.common.deps import ResourcesDep, bearer_scheme, get_admin

router = APIRouter(tags=["monitoring"])


async def metrics_access(
    request: Request, resources: ResourcesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> None:
    """Admin token required unless ``metrics_public`` is set."""
    if resources.settings.metrics_public:
        return
    await get_admin(request, resources, credentials)


@router.get("/metrics", response_class=Response,
            dependencies=[Security(metrics_access)])
def metrics(resources: ResourcesDep) -> Response:
    """Prometheus metrics: backups per kind, verification, active alerts, drills."""
    runtime = runtime_for(resources)
    if runtime is not None:
        def snapshot() -> DrStatus:
            return runtime.status(max_age=SCRAPE_CACHE_SECONDS)
    else:
        def snapshot() -> DrStatus:
            return collect_status(resources.settings, resources.creds)
    return Response(render(snapshot), media_type=CONTENT_TYPE_LATEST)
