"""The JSON error handlers every service installs.

Every ``AutographError`` becomes ``{"detail": message}`` with its ``http_status``; bad input
becomes 400 (malformed JSON) or 422 (validation) JSON; an unreachable PostgreSQL, Redis or
S3 becomes 503; anything else is a 500 JSON without a traceback (logged once, by the
``RequestContext`` middleware). A 405 names in ``Allow`` every method served at the path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
import redis.exceptions
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from autograph.errors import AutographError
from autograph.services.common.resources import Resources
from autograph.services.common.security import Unauthorized

log = logging.getLogger("autograph.services")

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


async def _autograph_error(_request: Request, exc: AutographError) -> JSONResponse:
    if isinstance(exc, Unauthorized):
        return _error(401, exc.message)
    answer = _error(exc.http_status, exc.message)
    answer.headers.update(getattr(exc, "headers", None) or {})
    return answer


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 405:
        allow = ", ".join(allowed_methods(request.app.routes, request.scope))
        exc.headers = {**(exc.headers or {}), "Allow": allow}
    return await http_exception_handler(request, exc)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
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


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("PostgreSQL unavailable: %s", exc)
    return _error(503, "PostgreSQL is unavailable")


async def _table_missing(request: Request, exc: Exception) -> JSONResponse:
    resources: Resources = request.app.state.resources
    answer = _error(503, await resources.schema_lost())
    answer.headers["Retry-After"] = "5"
    return answer


async def _bad_value(_request: Request, exc: Exception) -> JSONResponse:
    return _error(400, "a value was rejected by the database")


async def _redis_down(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("Redis unavailable: %s", exc)
    return _error(503, "Redis is unavailable")


async def _s3_down(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("S3 unavailable: %s", exc)
    return _error(503, "S3 object storage is unavailable")


async def _s3_refused(_request: Request, exc: ClientError) -> JSONResponse:
    code = exc.response.get("Error", {}).get("Code", "error")
    log.warning("S3 refused a request: %s", exc)
    return _error(502, f"S3 object storage refused the request ({code})")


_HANDLERS: tuple[tuple[type[Exception], Callable[[Request, Any], Awaitable[Response]]], ...] = (
    (AutographError, _autograph_error),
    (StarletteHTTPException, _http_error),
    (RequestValidationError, _validation_error),
    (PoolTimeout, _database_down),
    (psycopg.OperationalError, _database_down),
    (psycopg.errors.UndefinedTable, _table_missing),
    (psycopg.DataError, _bad_value),
    (redis.exceptions.ConnectionError, _redis_down),
    (redis.exceptions.TimeoutError, _redis_down),
    (BotoCoreError, _s3_down),
    (ClientError, _s3_refused),
)


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers described in the module docstring."""
    for kind, handler in _HANDLERS:
        app.exception_handler(kind)(handler)
