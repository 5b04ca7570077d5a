"""Routes of the gateway itself: the whole-stack health summary and the proxied APIs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import StreamingResponse

from autograph.services.gateway.proxy import forward
from autograph.stack.components import Component

health_router = APIRouter(tags=["health"])
proxy_router = APIRouter()

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

# Path prefix -> the stack service that owns it.
ROUTES: dict[str, str] = {
    "/api/auth": "auth",
    "/api/users": "auth",
    "/api/diagrams": "diagram",
    "/api/ai": "ai",
    "/api/collab": "collaboration",
    "/api/exports": "export",
    "/api/git": "git",
    "/api/integrations": "integrations",
    "/api/render": "svg",
}


@health_router.get("/health/all", summary="Health of every component of the stack")
async def health_all(request: Request) -> JSONResponse:
    """Every component (PostgreSQL, Redis, S3, each service) with its priority and health;
    200 when all are healthy, else 503."""
    components: list[Component] = request.app.state.components
    results = await asyncio.gather(*(asyncio.to_thread(c.health) for c in components))
    summary = {
        component.name: {
            "status": "healthy" if result.healthy else "unhealthy",
            "kind": component.kind,
            "priority": component.priority,
            "detail": result.detail,
        }
        for component, result in zip(components, results, strict=True)
    }
    healthy = all(result.healthy for result in results)
    return JSONResponse({"status": "healthy" if healthy else "unhealthy",
                         "components": summary}, status_code=200 if healthy else 503)


def _endpoint(service: str) -> Callable[[Request], Awaitable[StreamingResponse]]:
    async def endpoint(request: Request) -> StreamingResponse:
        return await forward(request, request.app.state.http, service,
                             request.app.state.settings.service_url(service))

    return endpoint


for _prefix, _service in ROUTES.items():
    for _path in (_prefix, _prefix + "/{path:path}"):
        proxy_router.add_api_route(_path, _endpoint(_service), methods=METHODS,
                                   include_in_schema=False)
