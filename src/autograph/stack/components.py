"""The stack as data: every component is a declaration walked in recovery-priority order.

Adding an application service is adding one ``ServiceSpec`` line to ``APPLICATION_SERVICES``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from autograph.config import Settings
from autograph.connections import redis_kwargs
from autograph.s3.boto import app_client
from autograph.secrets import Credentials
from autograph.stack import infra
from autograph.stack.health import (
    Probe,
    http_probe,
    postgres_probe,
    redis_probe,
    s3_probe,
)


@dataclass(frozen=True)
class Component:
    """One process of the stack (or an external dependency with only a health check)."""

    name: str
    priority: int
    kind: str  # "infrastructure" | "service"
    ports: tuple[int, ...]
    command: tuple[str, ...] | None  # None: external, not run by us
    health: Probe
    environment: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    depends_on: tuple[str, ...] = ()
    prepare: Callable[[], None] | None = None
    after_healthy: Callable[[], object] | None = None
    stop_signal: str = "TERM"
    stop_wait_seconds: int = 10
    cwd: str | None = None  # default: the home (a server run as another user needs its own)

    @property
    def managed(self) -> bool:
        """True when the stack runs this component itself."""
        return self.command is not None


@dataclass(frozen=True)
class ServiceSpec:
    """An application service: a FastAPI app module served by uvicorn."""

    name: str
    module: str  # exposes ``app`` or ``create_app()``
    priority: int
    depends_on: tuple[str, ...] = ("postgres", "redis", "s3")


# The plan's priorities: 2 = gateway, auth, diagrams; 3 = the rest.
APPLICATION_SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("gateway", "autograph.services.gateway.app:create_app", 2),
    ServiceSpec("auth", "autograph.services.auth.app:create_app", 2),
    ServiceSpec("diagram", "autograph.services.diagrams.app:create_app", 2),
    ServiceSpec("svg", "autograph.services.svg.app:create_app", 3, ("redis",)),
    ServiceSpec("ai", "autograph.services.ai.app:create_app", 3, ("redis", "diagram")),
    ServiceSpec("collaboration", "autograph.services.collaboration.app:create_app", 3,
                ("postgres", "redis")),
    # export calls svg per request, not at start: they start together (no serial stage).
    ServiceSpec("export", "autograph.services.export.app:create_app", 3,
                ("redis", "s3", "diagram")),
    ServiceSpec("git", "autograph.services.git.app:create_app", 3, ("redis", "diagram")),
    ServiceSpec("integrations", "autograph.services.integrations.app:create_app", 3,
                ("postgres", "redis")),
    ServiceSpec("frontend", "autograph.services.frontend.app:create_app", 3, ("gateway",)),
)


def _service_environment(settings: Settings) -> dict[str, str]:
    """The settings as AUTOGRAPH_* variables, so a service process sees what ``up`` saw."""
    env = {"PYTHONUNBUFFERED": "1"}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        if name == "home":
            value = str(settings.home_dir)
        env[f"AUTOGRAPH_{name.upper()}"] = (
            json.dumps(value) if isinstance(value, list | dict) else str(value)
        )
    for name in type(settings).model_fields:
        secret = getattr(settings, name)
        if hasattr(secret, "get_secret_value"):
            env[f"AUTOGRAPH_{name.upper()}"] = secret.get_secret_value()
    return env


KEEP_ALIVE_SECONDS = 30


def service_component(settings: Settings, spec: ServiceSpec) -> Component:
    """The component that runs one application service under uvicorn."""
    port = settings.service_port(spec.name)
    return Component(
        name=spec.name,
        priority=spec.priority,
        kind="service",
        ports=(port,),
        command=(
            sys.executable, "-m", "uvicorn", spec.module, "--factory",
            "--host", settings.host, "--port", str(port), "--no-access-log",
            "--log-level", "warning",
            # Longer than any client's pooled keep-alive (httpx: 5 s, the gateway's: 2 s): a
            # server closing an idle connection as a client reuses it fails that request.
            "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS),
        ),
        health=http_probe(f"{settings.service_url(spec.name)}/health"),
        environment=_service_environment(settings),
        depends_on=spec.depends_on,
    )


def build_components(settings: Settings, creds: Credentials) -> list[Component]:
    """Every component of the stack, in start order (priority, then declaration order)."""
    components = [_postgres(settings, creds), _redis(settings, creds), _s3(settings, creds),
                  _walstream(settings, creds)]
    if settings.offsite_s3_endpoint:  # ships WAL and the backlog to the off-site tier
        components.append(_offsite(settings))
    wanted = set(settings.services) if settings.services is not None else None
    for spec in APPLICATION_SERVICES:
        if wanted is None or spec.name in wanted:
            components.append(service_component(settings, spec))
    return sorted(components, key=lambda c: c.priority)


def _postgres(settings: Settings, creds: Credentials) -> Component:
    """PostgreSQL: ours (run, prepared, migrated) or an external one (probed, migrated)."""
    return Component(
        name="postgres",
        priority=1,
        kind="infrastructure",
        ports=() if settings.pg_external else (settings.pg_port,),
        command=None if settings.pg_external else infra.postgres_command(settings),
        health=postgres_probe(settings.pg_address, settings.pg_port, settings.pg_user,
                              creds.pg_password, "postgres", settings.pg_sslmode),
        user=infra.postgres_os_user(settings),
        prepare=None if settings.pg_external
        else lambda: infra.prepare_postgres(settings, creds),
        after_healthy=lambda: infra.prepare_database(settings, creds),  # migrated
        stop_signal="INT",
        stop_wait_seconds=30,
        cwd=str(infra.postgres_home(settings)),
    )


def _redis(settings: Settings, creds: Credentials) -> Component:
    """Redis: ours or an external one."""
    return Component(
        name="redis",
        priority=1,
        kind="infrastructure",
        ports=() if settings.redis_external else (settings.redis_port,),
        command=None if settings.redis_external else infra.redis_command(settings),
        health=redis_probe(redis_kwargs(settings, creds)),
        prepare=None if settings.redis_external
        else lambda: infra.prepare_redis(settings, creds),
    )


def _s3(settings: Settings, creds: Credentials) -> Component:
    """The S3 server, its buckets created once it answers."""
    return Component(
        name="s3",
        priority=1,
        kind="infrastructure",
        ports=infra.s3_ports(settings),
        command=infra.s3_command(settings),
        health=s3_probe(lambda: app_client(settings, creds, retries=1,
                                           connect_timeout=1, read_timeout=5)),
        environment=infra.s3_environment(settings, creds),
        prepare=lambda: infra.prepare_s3(settings, creds),
        after_healthy=lambda: infra.ensure_s3_buckets(settings, creds),
        stop_wait_seconds=settings.s3_stop_grace_seconds,
    )


def _walstream(settings: Settings, creds: Credentials) -> Component:
    """The WAL streamer (after PostgreSQL)."""
    return Component(
        name="walstream",
        priority=1,
        kind="infrastructure",
        ports=(),
        command=(sys.executable, "-m", "autograph.dr.postgres.walstream"),
        health=infra.walstream_probe(settings, creds),
        environment=_service_environment(settings),
        depends_on=("postgres",),
    )


def _offsite(settings: Settings) -> Component:
    """The off-site shipper (after the WAL streamer)."""
    return Component(
        name="offsite",
        priority=1,
        kind="infrastructure",
        ports=(),
        command=(sys.executable, "-m", "autograph.dr.offsite.shipper"),
        health=infra.offsite_probe(settings),
        environment=_service_environment(settings),
        depends_on=("walstream",),
    )

