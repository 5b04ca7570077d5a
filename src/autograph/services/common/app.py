"""The FastAPI app factory every service uses: JSON errors (:mod:`.error_handlers`),
/health, resources, middleware."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from autograph.config import Settings
from autograph.services.common.error_handlers import install_error_handlers
from autograph.services.common.middleware import RequestContext
from autograph.services.common.openapi import document_errors
from autograph.services.common.resources import Resources

log = logging.getLogger("autograph.services")

HealthCheck = Callable[[], Awaitable[str]]
"""A named check: returns a short detail when healthy, raises when not."""

Hook = Callable[[Resources], Awaitable[None]]

HEALTH_CHECK_TIMEOUT = 4.0
BODY_OVERHEAD_BYTES = 256 * 1024  # multipart envelope around an upload of the maximum size


def create_app(
    title: str,
    settings: Settings,
    routers: Sequence[APIRouter],
    health_checks: Mapping[str, HealthCheck],
    *,
    resources: Resources | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    description: str = "",
) -> FastAPI:
    """Build a service app: routers, ``GET /health`` over ``health_checks``, JSON errors,
    request ids, access log, body size limit; ``on_startup`` hooks run in order at start,
    ``on_shutdown`` hooks at shutdown, then the resources are closed."""
    res = resources or Resources(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            await hook(res)
        try:
            yield
        finally:
            for hook in on_shutdown:
                await hook(res)
            await res.close()

    app = FastAPI(title=title, description=description, version="3.0.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.resources = res
    install_error_handlers(app)
    app.add_middleware(RequestContext,
                       max_body_bytes=settings.max_upload_bytes + BODY_OVERHEAD_BYTES,
                       service=title)

    @app.get("/health", tags=["health"], summary="Health of this service and its dependencies")
    async def health() -> JSONResponse:
        """200 ``{"status": "healthy"}`` or 503 ``{"status": "unhealthy", "checks": …}``."""
        checks = await run_checks(health_checks)
        healthy = all(result["healthy"] for result in checks.values())
        body = {"status": "healthy" if healthy else "unhealthy",
                "checks": {name: result["detail"] for name, result in checks.items()}}
        return JSONResponse(body, status_code=200 if healthy else 503)

    for router in routers:
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            app.openapi_schema = document_errors(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def run_checks(checks: Mapping[str, HealthCheck]) -> dict[str, dict[str, Any]]:
    """Run health checks concurrently, each bounded by a timeout; a failure is its message."""

    async def one(check: HealthCheck) -> dict[str, Any]:
        try:
            detail = await asyncio.wait_for(check(), HEALTH_CHECK_TIMEOUT)
            return {"healthy": True, "detail": detail}
        except TimeoutError:
            return {"healthy": False, "detail": f"no answer within {HEALTH_CHECK_TIMEOUT:g} s"}
        except Exception as exc:  # a health check reports every failure, never raises
            text = str(exc).strip().splitlines()
            return {"healthy": False, "detail": text[0] if text else type(exc).__name__}

    names = list(checks)
    results = await asyncio.gather(*(one(checks[name]) for name in names))
    return dict(zip(names, results, strict=True))
