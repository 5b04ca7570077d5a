"""The FastAPI app factory every service uses: JSON errors, /health, resources, middleware.

Every ``AutographError`` becomes ``{"detail": message}`` with its ``http_status``; bad input
becomes 400 (malformed JSON) or 422 (validation) JSON; an unreachable PostgreSQL, Redis or
S3 becomes 503; anything else is a 500 JSON without a traceback (logged once, by the
``RequestContext`` middleware). A 405 names in ``Allow`` every method served at the path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import redis.exceptions
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from autograph.config import Settings
from autograph.errors import AutographError
from autograph.services.common.middleware import RequestContext
from autograph.services.common.openapi import document_errors
from autograph.services.common.resources import Resources
from autograph.services.common.security import Unauthorized

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


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route serves at the request's path, asked of the routes themselves
    (Starlette names only the methods of the first route whose path matches, so a path served
    by several routes, such as GET and PUT of one diagram, got a wrong ``Allow``)."""
    return [method for method in HTTP_METHODS
            if any(route.matches({**scope, "method": method})[0] == Match.FULL
                   for route in routes)]


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers described in the module docstring."""

    @app.exception_handler(AutographError)
    async def autograph_error(_request: Request, exc: AutographError) -> JSONResponse:
        if isinstance(exc, Unauthorized):
            return _error(401, exc.message)
        answer = _error(exc.http_status, exc.message)
        answer.headers.update(getattr(exc, "headers", None) or {})
        return answer

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(request.app.routes, request.scope))
            exc.headers = {**(exc.headers or {}), "Allow": allow}
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(part) for part in error.get("loc", ())],
             "msg": str(error.get("msg", "invalid")), "type": str(error.get("type", ""))}
            for error in exc.errors()
        ]
        malformed = any(error["type"] == "json_invalid" for error in errors)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"])
        summary = "malformed JSON body" if malformed else f"{where}: {first['msg']}"
        return _error(400 if malformed else 422, summary, errors=errors)

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def database_down(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("PostgreSQL unavailable: %s", exc)
        return _error(503, "PostgreSQL is unavailable")

    @app.exception_handler(psycopg.errors.UndefinedTable)
    async def table_missing(request: Request, exc: Exception) -> JSONResponse:
        resources: Resources = request.app.state.resources
        answer = _error(503, await resources.schema_lost())
        answer.headers["Retry-After"] = "5"
        return answer

    @app.exception_handler(psycopg.DataError)
    async def bad_value(_request: Request, exc: Exception) -> JSONResponse:
        return _error(400, "a value was rejected by the database")

    @app.exception_handler(redis.exceptions.ConnectionError)
    @app.exception_handler(redis.exceptions.TimeoutError)
    async def redis_down(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("Redis unavailable: %s", exc)
        return _error(503, "Redis is unavailable")

    @app.exception_handler(BotoCoreError)
    async def s3_down(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("S3 unavailable: %s", exc)
        return _error(503, "S3 object storage is unavailable")

    @app.exception_handler(ClientError)
    async def s3_refused(_request: Request, exc: ClientError) -> JSONResponse:
        code = exc.response.get("Error", {}).get("Code", "error")
        log.warning("S3 refused a request: %s", exc)
        return _error(502, f"S3 object storage refused the request ({code})")
