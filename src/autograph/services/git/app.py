"""The git service (port 8087): ``uvicorn autograph.services.git.app:create_app --factory``."""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI

from autograph.commands import run
from autograph.config import Settings, load_settings
from autograph.logs import setup_logging
from autograph.services.common.app import HealthCheck
from autograph.services.common.app import create_app as create_service_app
from autograph.services.common.checks import redis_check
from autograph.services.common.resources import Resources
from autograph.services.git.routes import router
from autograph.services.git.sync import git_root


def repositories_check(settings: Settings) -> HealthCheck:
    """The git program runs and the repository folder is writable."""

    async def check() -> str:
        root = git_root(settings)
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        if not os.access(root, os.W_OK):
            raise OSError(f"{root} is not writable")
        out = await asyncio.to_thread(run, ["git", "--version"], timeout=10, what="git")
        return out.stdout.strip()

    return check


def create_app(settings: Settings | None = None) -> FastAPI:
    """Diagrams to and from bare git repositories under ``HOME/data/git``."""
    if settings is None:
        settings = load_settings()
        setup_logging()
    resources = Resources(settings)
    return create_service_app(
        "AutoGraph git service", settings, [router],
        {"redis": redis_check(resources), "repositories": repositories_check(settings)},
        resources=resources, description="Diagram versions to and from git repositories.",
    )
