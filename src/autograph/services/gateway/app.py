"""The API gateway (port 8080): ``uvicorn autograph.services.gateway.app:create_app --factory``.

The single entry point: proxies /api/auth, /api/users and /api/diagrams to the services,
serves the admin/DR API and `/metrics` (:mod:`autograph.dr.api.routes`), its own
``/health``, ``/health/all`` and the merged OpenAPI docs at ``/docs``.
"""

from __future__ import annotations

from fastapi import FastAPI

from autograph.config import Settings, load_settings
from autograph.dr.api import routes as dr_routes
from autograph.dr.daemon import gateway_extension
from autograph.logs import setup_logging
from autograph.services.collaboration.relay import relay_router
from autograph.services.common.app import create_app as create_service_app
from autograph.services.common.checks import postgres_connect_check, redis_check, s3_check
from autograph.services.common.resources import Resources
from autograph.services.gateway.docs import merged_openapi
from autograph.services.gateway.proxy import make_client
from autograph.services.gateway.routes import health_router, proxy_router
from autograph.stack.components import build_components


def create_app(settings: Settings | None = None) -> FastAPI:
    """The gateway app."""
    if settings is None:
        settings = load_settings()
        setup_logging()
    resources = Resources(settings)
    http = make_client(settings)

    async def close_http(_resources: Resources) -> None:
        await http.aclose()

    dr_start, dr_stop = gateway_extension()
    app = create_service_app(
        "AutoGraph API gateway", settings,
        [health_router, *dr_routes.routers, relay_router, proxy_router],
        {"postgres": postgres_connect_check(resources), "redis": redis_check(resources),
         "s3": s3_check(resources)},
        resources=resources, on_startup=dr_start, on_shutdown=[*dr_stop, close_http],
        description="The single entry point of AutoGraph v3: application API (proxied to the "
                    "auth and diagram services) and the admin/disaster-recovery API.",
    )
    app.state.http = http
    app.add_middleware(dr_routes.AuditMiddleware, dr_dir=settings.dr_dir)
    app.state.components = build_components(settings, resources.creds)
    app.openapi = merged_openapi(app, settings)  # type: ignore[method-assign]
    return app
