"""up / down / ps / start / stop / restart: walking the component list in priority order."""

from __future__ import annotations

import contextlib
import glob
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autograph import commands
from autograph.config import Settings, ensure_home
from autograph.errors import ConfigError, NotFound, OperationFailed
from autograph.secrets import Credentials, load_credentials
from autograph.stack.components import Component, build_components
from autograph.stack.health import Health, port_free
from autograph.stack.supervisor import Supervisor, log_path, write_config

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ComponentStatus:
    """One line of ``ps``."""

    name: str
    priority: int
    state: str
    pid: int | None
    uptime_seconds: float | None
    healthy: bool
    detail: str
    ports: tuple[int, ...]
    log: str


def last_log_lines(path: Path, lines: int = 3) -> str:
    """The last lines a component wrote (its log's final 8 KiB), on one line: why it exited
    stays in the error after a temporary home is gone."""
    try:
        with open(path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 8192))
            return commands.tail(log.read().decode(errors="replace"), lines)
    except OSError:
        return "(no log)"


class Stack:
    """The local stack under one home folder."""

    def __init__(self, settings: Settings, creds: Credentials | None = None) -> None:
        ensure_home(settings)
        self.settings = settings
        self.creds = creds or load_credentials(settings)
        self.components = build_components(settings, self.creds)
        self.supervisor = Supervisor(settings)

    # Lookup --------------------------------------------------------------------------------
    def component(self, name: str) -> Component:
        """The component called ``name``; NotFound lists the valid names."""
        for component in self.components:
            if component.name == name:
                return component
        names = ", ".join(c.name for c in self.components)
        raise NotFound(f"unknown component {name!r} (components: {names})")

    def _state(self, name: str) -> str:
        info = self.supervisor.all_info().get(name)
        return info.state if info else "STOPPED"

    # Up / down -----------------------------------------------------------------------------
    def up(self, progress: Progress = lambda _msg: None,
           only: list[str] | None = None) -> list[str]:
        """Start every component not running, in priority order, each waited on through its
        health check. Returns the names started. Idempotent.

        Raises ConfigError naming the port and component when a port is taken (before anything
        starts), OperationFailed naming the component and its log when one does not become
        healthy (then the components started by this call are stopped again, and supervisord
        too when this call started it: a failed ``up`` leaves nothing running).
        """
        targets = [c for c in self.components if only is None or c.name in only]
        running = {n for n, i in self.supervisor.all_info().items() if i.state == "RUNNING"}
        to_start = [c for c in targets if c.managed and c.name not in running]
        for component in to_start:
            for port in component.ports:
                if not port_free(self.settings.host, port):
                    raise ConfigError(
                        f"port {port} needed by {component.name} is already in use "
                        f"(set AUTOGRAPH_{_port_setting(component)} to another port)"
                    )
        write_config(self.settings, self.components)
        supervisor_was_running = self.supervisor.running()
        self.supervisor.ensure_running()
        started: list[str] = []
        try:
            for component in targets:
                if component.name in running:
                    continue
                if component.managed:
                    progress(f"starting {component.name}")
                    if component.prepare:
                        component.prepare()
                    self.supervisor.start(component.name)
                    started.append(component.name)
                self.wait_healthy(component)
                if component.after_healthy:
                    component.after_healthy()
                progress(f"{component.name} healthy")
        except BaseException:
            for name in reversed(started):
                with contextlib.suppress(Exception):
                    self.supervisor.stop(name)
            if not supervisor_was_running:
                with contextlib.suppress(Exception):
                    self.supervisor.shutdown()
                    self._clean_weed_sockets()
            raise
        return started

    def wait_healthy(self, component: Component, timeout: float | None = None) -> Health:
        """Poll a component's health until it answers healthy.

        Raises OperationFailed naming the component and its log file on timeout or exit.
        """
        limit = timeout if timeout is not None else self.settings.health_timeout_seconds
        deadline = time.monotonic() + limit
        last = Health(False, "no answer yet")
        while time.monotonic() < deadline:
            if component.managed:
                state = self._state(component.name)
                if state in ("EXITED", "FATAL", "BACKOFF", "STOPPED"):
                    path = log_path(self.settings, component.name)
                    raise OperationFailed(
                        f"{component.name} exited during start ({state}): "
                        f"{last_log_lines(path)}; see {path}"
                    )
            last = component.health()
            if last.healthy:
                return last
            time.sleep(0.25)
        raise OperationFailed(
            f"{component.name} not healthy after {limit:.0f} s ({last.detail}); "
            f"see {log_path(self.settings, component.name)}"
        )

    def down(self, progress: Progress = lambda _msg: None) -> None:
        """Stop every component in reverse priority order, then supervisord."""
        if not self.supervisor.running():
            return
        for component in reversed(self.components):
            if component.managed and self._state(component.name) in ("RUNNING", "STARTING"):
                progress(f"stopping {component.name}")
                self.supervisor.stop(component.name)
        self.supervisor.shutdown()
        self._clean_weed_sockets()

    def _clean_weed_sockets(self) -> None:
        for port in self.component("s3").ports:
            for path in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(path)

    # One component -------------------------------------------------------------------------
    def start(self, name: str) -> None:
        """Start one component (and wait on its health)."""
        self.up(only=[self.component(name).name])

    def stop(self, name: str) -> None:
        """Stop one component."""
        component = self.component(name)
        if component.managed and self.supervisor.running():
            self.supervisor.stop(component.name)

    def restart(self, name: str) -> None:
        """Stop then start one component."""
        self.stop(name)
        self.start(name)

    # Status --------------------------------------------------------------------------------
    def ps(self) -> list[ComponentStatus]:
        """State, pid, uptime and health of every component."""
        infos = self.supervisor.all_info()
        now = time.time()
        rows = []
        for component in self.components:
            info = infos.get(component.name)
            state = info.state if info else ("EXTERNAL" if not component.managed else "STOPPED")
            running = state in ("RUNNING", "STARTING", "EXTERNAL")
            health = component.health() if running else Health(False, state.lower())
            rows.append(ComponentStatus(
                name=component.name,
                priority=component.priority,
                state=state,
                pid=info.pid if info and info.pid else None,
                uptime_seconds=(now - info.started_at)
                if info and running and info.started_at else None,
                healthy=health.healthy,
                detail=health.detail,
                ports=component.ports,
                log=str(log_path(self.settings, component.name)),
            ))
        return rows

    def log_file(self, name: str) -> str:
        """The log file of one component."""
        return str(log_path(self.settings, self.component(name).name))


def _port_setting(component: Component) -> str:
    if component.kind == "service":
        return f"{component.name.upper()}_PORT"
    return {"postgres": "PG_PORT", "redis": "REDIS_PORT", "s3": "S3_PORT"}.get(
        component.name, "PORT")
