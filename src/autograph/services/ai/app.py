"""The AI service (port 8084): ``uvicorn autograph.services.ai.app:create_app --factory``."""

from __future__ import annotations

from fastapi import FastAPI

from autograph.config import Settings, load_settings
from autograph.logs import setup_logging
from autograph.services.ai.routes import router
from autograph.services.common.app import create_app as create_service_app
from autograph.services.common.checks import redis_check
from autograph.services.common.resources import Resources


def create_app(settings: Settings | None = None) -> FastAPI:
    """Diagram generation from text; Redis to check sessions, the diagram service to save."""
    if settings is None:
        settings = load_settings()
        setup_logging()
    resources = Resources(settings)
    return create_service_app(
        "AutoGraph AI service", settings, [router], {"redis": redis_check(resources)},
        resources=resources, description="Diagram generation from a text description.",
    )
