"""Starting a set of the stack's components for a recovery: all at once, each as soon as what it
depends on is healthy, each waited on through its health check. Waiting for a whole priority
tier left services idle that need nothing of it (the priority-3 services waited for the
gateway although most need only Redis or PostgreSQL: a serial stage of a third of the start
step). The infrastructure (priority 1) still comes before any service, and the threads start
in priority order, so the plan's first services get their head start.

Each component is started through its own ``Stack`` handle (``Stack.up(only=[name])``: port
checks, prepare, start, health wait, after-healthy), after one call that makes sure supervisord
runs with the current configuration, so the handles never race to start it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograph.clock import Clock, isoformat
from autograph.dr.ops.steps import Skip
from autograph.errors import AutographError, OperationFailed
from autograph.stack.components import Component
from autograph.stack.infra import postgres_data_dir, prepare_database
from autograph.stack.lifecycle import Stack

# How long one component may take to answer healthy during a recovery. Longer than the stack's
# everyday wait: ten Python services importing at once on a loaded two-core machine took over
# 60 s (seen in a scheduled drill), and a slow start is not a failed one. A process that exits
# is still reported at once; the step's own budget (600 s) bounds the whole.
RECOVERY_HEALTH_SECONDS = 300.0


@dataclass
class Started:
    """Seconds from the start call to healthy, and the moment it was healthy, per component."""

    seconds: dict[str, float] = field(default_factory=dict)
    healthy_at: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def waits_for(component: Component, starting: list[Component]) -> list[str]:
    """What ``component`` waits for among the components ``starting`` with it: what it
    depends on, and every infrastructure component when it is a service."""
    names = {c.name for c in starting}
    infrastructure = {c.name for c in starting if component.kind == "service"
                      and c.kind != "service"}
    return sorted(infrastructure | {d for d in component.depends_on if d in names})


def start_components(stack: Stack, components: list[Component], clock: Clock) -> Started:
    """Start ``components`` (each once its dependencies among them are healthy; infrastructure
    before services).

    Raises OperationFailed naming every component that did not become healthy (the others
    are left running and recorded).
    """
    if not components:
        return Started()
    stack.up(only=[])  # supervisord up, configuration current
    done = {c.name: threading.Event() for c in components}
    result = Started()
    lock = threading.Lock()

    # One handle (own supervisord connection) per component, made here: constructing a Stack
    # probes the home folder, which must not happen in several threads at once.
    handles = {c.name: Stack(stack.settings, stack.creds) for c in components}

    def start(component: Component) -> None:
        try:
            for name in waits_for(component, components):
                done[name].wait()
                if name in result.failed:
                    raise OperationFailed(f"not started: {name} failed first")
            began = time.monotonic()
            handle = handles[component.name]
            handle.stop(component.name)
            handle.up(only=[component.name])
            handle.wait_healthy(handle.component(component.name), timeout=max(
                RECOVERY_HEALTH_SECONDS, stack.settings.health_timeout_seconds))
            with lock:
                result.seconds[component.name] = round(time.monotonic() - began, 3)
                result.healthy_at[component.name] = isoformat(clock())
        except AutographError as exc:
            with lock:
                result.failed[component.name] = exc.message
        except Exception as exc:  # recorded as this component's failure
            with lock:
                result.failed[component.name] = f"{type(exc).__name__}: {exc}"
        finally:
            done[component.name].set()

    threads = [threading.Thread(target=start, args=(c,), name=f"start-{c.name}", daemon=True)
               for c in components]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if result.failed:
        raise OperationFailed("; ".join(f"{name}: {why}" for name, why in
                                        result.failed.items()))
    return result


def start_services(stack: Stack, clock: Clock, todo: list[Component]) -> dict[str, Any]:
    """The schema migrated (the restores migrated what they restored; this covers every other
    path: an empty database made by the infrastructure step, a resumed run), then ``todo``
    (the application services not healthy) started. Raises Skip when ``todo`` is empty,
    OperationFailed as :func:`start_components`."""
    schema = prepare_database(stack.settings, stack.creds).summary()
    if not todo:
        raise Skip(f"every application service healthy; {schema}",
                   {"healthy_at": {}, "schema": schema})
    started = start_components(stack, todo, clock)
    return {"seconds": started.seconds, "healthy_at": started.healthy_at, "schema": schema}


def set_aside_broken_cluster(folder: Path, clock: Clock) -> list[str]:
    """A PostgreSQL data folder without a cluster in it is renamed, never deleted."""
    if folder.exists() and not (folder / "PG_VERSION").exists() and any(folder.iterdir()):
        target = folder.with_name(f"postgres.lost-{clock():%Y%m%dT%H%M%SZ}")
        os.rename(folder, target)
        return [str(target)]
    return []


def ready_for_dump(stack: Stack, had_cluster: bool, clock: Clock) -> None:
    """After a failed physical recovery: a data folder that was not there before is set
    aside, and PostgreSQL (an empty cluster if need be) is started for the dump."""
    stack.stop("postgres")
    folder = postgres_data_dir(stack.settings)
    if not had_cluster and folder.exists():
        os.rename(folder, folder.with_name(f"postgres.failed_pitr_{clock():%Y%m%dT%H%M%SZ}"))
    start_components(stack, [c for c in stack.components
                             if c.name in ("postgres", "walstream")], clock)
