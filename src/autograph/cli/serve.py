"""Container entry points: ``serve NAME`` runs one component in the foreground (the image's
ENTRYPOINT), ``probe`` answers its health check (the image's HEALTHCHECK).

In a container there is no supervisord: the orchestrator is the supervisor, so ``serve``
replaces itself with the component's own process (signals reach it directly) and ``probe``
checks the component this container serves on its loopback address.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from autograph.cli.output import console
from autograph.config import Settings, ensure_home, load_settings
from autograph.errors import AutographError, DependencyDown, NotFound, OperationFailed
from autograph.secrets import load_credentials
from autograph.stack.components import APPLICATION_SERVICES, Component, build_components
from autograph.stack.health import Health, http_probe

#: What an image can serve: every application service and the WAL receiver.
SERVABLE: tuple[str, ...] = (*(spec.name for spec in APPLICATION_SERVICES), "walstream")
SERVING_FILE = "serving"


def servable(settings: Settings, name: str) -> Component:
    """The component ``name`` as the stack declares it. Raises NotFound listing the names."""
    if name not in SERVABLE:
        raise NotFound(f"cannot serve {name!r} (one of: {', '.join(SERVABLE)})")
    services = tuple(spec.name for spec in APPLICATION_SERVICES if spec.name == name)
    components = build_components(settings.model_copy(update={"services": services}),
                                  load_credentials(settings))
    return next(c for c in components if c.name == name)


def serve(name: Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVABLE)}")]) -> None:
    """Run one service (or the WAL receiver) in the foreground: a container's main process."""
    settings = load_settings()
    ensure_home(settings)
    component = servable(settings, name)
    assert component.command is not None
    (settings.run_dir / SERVING_FILE).write_text(name + "\n")
    console.print(f"serving {name}")
    os.execvpe(component.command[0], list(component.command),
               {**os.environ, "PYTHONUNBUFFERED": "1"})


def probe(name: Annotated[str | None, typer.Argument(
        help="component (default: the one `serve` runs in this container)")] = None) -> None:
    """Check one served component's health: exit 0 when healthy, else a one-line reason."""
    settings = load_settings()
    if name is None:
        try:
            name = (settings.run_dir / SERVING_FILE).read_text().strip()
        except OSError:
            raise DependencyDown("nothing served here yet (no `autograph serve` started)"
                                 ) from None
    health = _health(settings, name)
    if not health.healthy:
        raise DependencyDown(f"{name} unhealthy: {health.detail}")
    console.print(f"{name} healthy ({health.detail})")


def _health(settings: Settings, name: str) -> Health:
    if name != "walstream" and name in SERVABLE:
        # Loopback, not the service's network name: behind a Kubernetes Service that name
        # would reach any replica, not this one.
        return http_probe(f"http://127.0.0.1:{settings.service_port(name)}/health")()
    return servable(settings, name).health()


def bootstrap() -> None:
    """Prepare infrastructure run by others: the database, its schema and the buckets.

    The application database exists with its schema migrated, and the application and backup
    buckets exist (idempotent: an init container or job)."""
    from autograph.stack import infra

    settings = load_settings()
    ensure_home(settings)
    creds = load_credentials(settings)
    for component in build_components(settings.model_copy(update={"services": ()}), creds):
        if component.name in ("postgres", "redis", "s3"):
            health = component.health()
            if not health.healthy:
                raise DependencyDown(f"{component.name} unhealthy: {health.detail}")
    try:
        run = infra.prepare_database(settings, creds)
        infra.ensure_s3_buckets(settings, creds)
    except AutographError:
        raise
    except Exception as exc:  # e.g. no CREATEDB right on a managed server: one line, no trace
        first = str(exc).strip().splitlines()
        raise OperationFailed(f"bootstrap: {first[0] if first else type(exc).__name__}"
                              ) from None
    console.print(f"database (schema version {run.status.version}) and buckets ready")


def register(app: typer.Typer) -> None:
    """Attach ``serve``, ``probe`` and ``bootstrap`` to the top-level app."""
    for command in (serve, probe, bootstrap):
        app.command()(command)
