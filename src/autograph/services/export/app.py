"""The export service (port 8097): ``uvicorn autograph.services.export.app:create_app
--factory``."""

from __future__ import annotations

from fastapi import FastAPI

from autograph.config import Settings, load_settings
from autograph.logs import setup_logging
from autograph.services.common.app import create_app as create_service_app
from autograph.services.common.checks import redis_check, s3_check
from autograph.services.common.resources import Resources
from autograph.services.export.exports import EXPORTS_BUCKET
from autograph.services.export.routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    """Exports into the ``exports`` bucket; Redis for sessions, S3 for the files."""
    if settings is None:
        settings = load_settings()
        setup_logging()
    resources = Resources(settings)
    return create_service_app(
        "AutoGraph export service", settings, [router],
        {"redis": redis_check(resources), "s3": s3_check(resources, EXPORTS_BUCKET)},
        resources=resources,
        description="Diagram exports (SVG, PNG, PDF) stored in the exports bucket.",
    )
