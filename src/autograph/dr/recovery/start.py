"""Starting a set of the stack's components for a recovery: in priority order, and at the same
time within a priority (each also waits for what it depends on), each waited on through its
health check. The plan's order stays: nothing of priority 2 starts before every priority-1
component being started is healthy.

Each component is started through its own ``Stack`` handle (``Stack.up(only=[name])``: port
checks, prepare, start, health wait, after-healthy), after one call that makes sure supervisord
runs with the current configuration, so the handles never race to start it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from autograph.clock import Clock, isoformat
from autograph.errors import AutographError, OperationFailed
from autograph.stack.components import Component
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


def start_components(stack: Stack, components: list[Component], clock: Clock) -> Started:
    """Start ``components`` (priority order, parallel within a priority, dependencies first).

    Raises OperationFailed naming every component that did not become healthy (the others
    are left running and recorded).
    """
    if not components:
        return Started()
    stack.up(only=[])  # supervisord up, configuration current
    names = {c.name for c in components}
    done = {c.name: threading.Event() for c in components}
    result = Started()
    lock = threading.Lock()

    def blockers(component: Component) -> list[str]:
        earlier = [c.name for c in components if c.priority < component.priority]
        needed = [d for d in component.depends_on if d in names]
        return sorted(set(earlier) | set(needed))

    # One handle (own supervisord connection) per component, made here: constructing a Stack
    # probes the home folder, which must not happen in several threads at once.
    handles = {c.name: Stack(stack.settings, stack.creds) for c in components}

    def start(component: Component) -> None:
        try:
            for name in blockers(component):
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
