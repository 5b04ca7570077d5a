"""The diagram service (port 8082): ``uvicorn autograph.services.diagrams.app:create_app
--factory``."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from autograph.config import Settings, load_settings
from autograph.logs import setup_logging
from autograph.services.common.app import create_app as create_service_app
from autograph.services.common.checks import postgres_check, redis_check, s3_check
from autograph.services.common.resources import Resources
from autograph.services.diagrams.objects import DIAGRAMS_BUCKET, purge_queued
from autograph.services.diagrams.routes import router

log = logging.getLogger("autograph.diagrams")


async def _warm_up(resources: Resources) -> None:
    """Check the schema and retry object deletions left over by an S3 outage."""
    await resources.warm_up()
    if resources.database_prepared:
        try:
            await purge_queued(resources)
        except Exception as exc:  # a leftover queue must not stop the service
            log.warning("deletion queue not purged: %s", exc)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The diagram app: diagrams, versions and uploads."""
    if settings is None:
        settings = load_settings()
        setup_logging()
    resources = Resources(settings)
    return create_service_app(
        "AutoGraph diagram service", settings, [router],
        {"postgres": postgres_check(resources), "redis": redis_check(resources),
         "s3": s3_check(resources, DIAGRAMS_BUCKET)},
        resources=resources, on_startup=[_warm_up],
        description="Diagrams, versions (canvas JSON in S3) and uploads.",
    )
