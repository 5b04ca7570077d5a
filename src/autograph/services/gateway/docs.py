"""The gateway's OpenAPI document: its own routes plus those of the services it fronts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from autograph.config import Settings
from autograph.services.common.openapi import document_errors
from autograph.services.gateway.routes import ROUTES

log = logging.getLogger("autograph.gateway")



def merged_openapi(app: FastAPI, settings: Settings) -> Callable[[], dict[str, Any]]:
    """An ``app.openapi`` replacement merging the documents of the services the gateway
    routes to (cached once every configured one answered; a service that is down is left
    out until it answers)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        complete = True
        wanted = settings.services
        for service in dict.fromkeys(ROUTES.values()):
            if wanted is not None and service not in wanted:
                continue
            try:
                response = httpx.get(f"{settings.service_url(service)}/openapi.json",
                                     timeout=2.0, trust_env=False)
                response.raise_for_status()
                upstream = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("OpenAPI of the %s service unavailable: %s", service, exc)
                complete = False
                continue
            for path, item in upstream.get("paths", {}).items():
                if path != "/health":
                    schema["paths"].setdefault(path, item)
            components = schema.setdefault("components", {})
            for kind, entries in upstream.get("components", {}).items():
                components.setdefault(kind, {}).update(entries)
        document_errors(schema)
        if complete:
            app.openapi_schema = schema
        return schema

    return openapi
