"""The health of PostgreSQL, Redis and S3 as the DR status shows it, ours or external
(SPEC §11): an operator of a managed database sees in ``dr status`` whether it answers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from autograph.config import Settings
from autograph.connections import redis_address
from autograph.secrets import Credentials
from autograph.stack.components import Component, build_components
from autograph.stack.health import Health

INFRASTRUCTURE = ("postgres", "redis", "s3")


class InfrastructureHealth(BaseModel):
    """One infrastructure component: where it is, who runs it, whether it answers."""

    name: str
    external: bool
    address: str
    healthy: bool
    detail: str


def address(settings: Settings, name: str) -> str:
    """Where a component is, for people (no credentials)."""
    if name == "postgres":
        return f"{settings.pg_address}:{settings.pg_port}"
    if name == "redis":
        return redis_address(settings)
    return settings.s3_url


def infrastructure_health(settings: Settings, creds: Credentials) -> list[InfrastructureHealth]:
    """Probe PostgreSQL, Redis and S3 concurrently (each probe times out in seconds)."""
    components = [c for c in build_components(settings.model_copy(update={"services": ()}),
                                              creds) if c.name in INFRASTRUCTURE]

    def probe(component: Component) -> Health:
        try:
            return component.health()
        except Exception as exc:  # a probe that raises reports the component down
            return Health(False, type(exc).__name__)

    with ThreadPoolExecutor(len(components), thread_name_prefix="infra-probe") as pool:
        results = list(pool.map(probe, components))
    return [InfrastructureHealth(name=c.name, external=not c.managed,
                                 address=address(settings, c.name), healthy=h.healthy,
                                 detail=h.detail[:200])
            for c, h in zip(components, results, strict=True)]
