"""The auth service (port 8085): ``uvicorn autograph.services.auth.app:create_app --factory``."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from autograph.config import Settings, load_settings
from autograph.logs import setup_logging
from autograph.services.auth.accounts import dummy_hash, prepare_auth_database
from autograph.services.auth.routes import auth_router, users_router
from autograph.services.common.app import create_app as create_service_app
from autograph.services.common.checks import standard_checks
from autograph.services.common.resources import Resources


async def _warm_up(resources: Resources) -> None:
    # The login timing equaliser's argon2 hash, made in a worker thread while the service
    # already answers (not awaited: it is not needed to be healthy).
    asyncio.get_running_loop().run_in_executor(None, dummy_hash)
    await resources.warm_up()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The auth app: the first admin at start (once the schema is current), then users and
    sessions."""
    if settings is None:
        settings = load_settings()
        setup_logging()
    resources = Resources(settings, prepare_database=prepare_auth_database)
    return create_service_app(
        "AutoGraph auth service", settings, [auth_router, users_router],
        standard_checks(resources, s3=False),
        resources=resources, on_startup=[_warm_up],
        description="Users, login and sessions.",
    )
