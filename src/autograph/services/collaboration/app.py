"""The collaboration service (port 8083): ``uvicorn
autograph.services.collaboration.app:create_app --factory``.

Several replicas can run side by side: rooms are shared through Redis pub/sub.
"""

from __future__ import annotations

from fastapi import FastAPI

from autograph.config import Settings, load_settings
from autograph.logs import setup_logging
from autograph.services.collaboration.hub import RoomHub
from autograph.services.collaboration.routes import router
from autograph.services.common.app import HealthCheck
from autograph.services.common.app import create_app as create_service_app
from autograph.services.common.checks import postgres_connect_check, redis_check
from autograph.services.common.resources import Resources


def subscription_check(app: FastAPI) -> HealthCheck:
    """The room subscription to Redis is live (messages from other replicas arrive)."""

    async def check() -> str:
        hub: RoomHub | None = getattr(app.state, "hub", None)
        if hub is None or not hub.subscribed.is_set():
            raise ConnectionError("not subscribed to the room channels")
        rooms = len(hub.rooms)
        clients = sum(len(c) for c in hub.rooms.values())
        return f"ok ({rooms} rooms, {clients} clients on this replica)"

    return check


def create_app(settings: Settings | None = None) -> FastAPI:
    """Real-time editing rooms over WebSocket, fanned out through Redis."""
    if settings is None:
        settings = load_settings()
        setup_logging()
    resources = Resources(settings)

    async def start_hub(res: Resources) -> None:
        app.state.hub = RoomHub(res.redis)
        app.state.hub.start()

    async def stop_hub(_res: Resources) -> None:
        await app.state.hub.stop()

    checks: dict[str, HealthCheck] = {"redis": redis_check(resources),
                                      "postgres": postgres_connect_check(resources)}
    app = create_service_app(
        "AutoGraph collaboration service", settings, [router], checks,
        resources=resources, on_startup=[start_hub], on_shutdown=[stop_hub],
        description="Real-time editing of diagrams over WebSocket (Redis pub/sub).",
    )
    checks["subscription"] = subscription_check(app)
    return app
