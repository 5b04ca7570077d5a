"""The SVG renderer (port 8096): ``uvicorn autograph.services.svg.app:create_app --factory``."""

from __future__ import annotations

from fastapi import FastAPI

from autograph.config import Settings, load_settings
from autograph.logs import setup_logging
from autograph.services.common.app import create_app as create_service_app
from autograph.services.common.checks import redis_check
from autograph.services.common.resources import Resources
from autograph.services.svg.routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    """The renderer: stateless; Redis only to check session tokens."""
    if settings is None:
        settings = load_settings()
        setup_logging()
    resources = Resources(settings)
    return create_service_app(
        "AutoGraph SVG renderer", settings, [router], {"redis": redis_check(resources)},
        resources=resources, description="Diagram JSON to SVG, PNG and PDF.",
    )
