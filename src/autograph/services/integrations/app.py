"""The integration hub (port 8099): ``uvicorn autograph.services.integrations.app:create_app
--factory``."""

from __future__ import annotations

from fastapi import FastAPI

from autograph.config import Settings, load_settings
from autograph.logs import setup_logging
from autograph.services.common.app import create_app as create_service_app
from autograph.services.common.checks import postgres_check, redis_check
from autograph.services.common.resources import Resources
from autograph.services.integrations.delivery import DeliveryWorker
from autograph.services.integrations.routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    """Outbound webhooks: registrations, events, signed deliveries with retries."""
    if settings is None:
        settings = load_settings()
        setup_logging()
    resources = Resources(settings)
    worker = DeliveryWorker(settings, resources)

    async def start(res: Resources) -> None:
        await res.warm_up()
        worker.start()

    async def stop(_res: Resources) -> None:
        await worker.stop()

    app = create_service_app(
        "AutoGraph integration hub", settings, [router],
        {"postgres": postgres_check(resources), "redis": redis_check(resources)},
        resources=resources, on_startup=[start], on_shutdown=[stop],
        description="Outbound webhooks: diagram events to third parties, signed, retried.",
    )
    app.state.worker = worker
    return app
