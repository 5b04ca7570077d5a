"""supervisord: the config rendered from the component declarations, and its XML-RPC control."""

from __future__ import annotations

import contextlib
import os
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from autograph import commands
from autograph.config import Settings
from autograph.errors import ConfigError, OperationFailed
from autograph.stack.components import Component
from autograph.stack.infra import find_program


def config_path(settings: Settings) -> Path:
    return settings.run_dir / "supervisord.conf"


def socket_path(settings: Settings) -> Path:
    return settings.run_dir / "supervisor.sock"


def log_path(settings: Settings, name: str) -> Path:
    """Where a component's output goes."""
    return settings.log_dir / f"{name}.log"


def _quote_env(environment: dict[str, str]) -> str:
    # supervisord splits this with a non-POSIX shlex: no backslash escapes, so a value is
    # wrapped in whichever quote character it does not contain (JSON lists hold '"').
    parts = []
    for key, value in sorted(environment.items()):
        escaped = value.replace("%", "%%")
        quote = "'" if '"' in escaped else '"'
        if quote in escaped:
            raise ConfigError(f"the value of {key} cannot contain both ' and \"")
        parts.append(f"{key}={quote}{escaped}{quote}")
    return ",".join(parts)


def _quote_arg(arg: str) -> str:
    if any(ch in arg for ch in " \t\"'"):
        return '"' + arg.replace('"', '\\"') + '"'
    return arg.replace("%", "%%")


def render_config(settings: Settings, components: list[Component]) -> str:
    """supervisord.conf for the managed components (none auto-started: we start in order)."""
    lines = [
        "[unix_http_server]",
        f"file={socket_path(settings)}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={settings.log_dir / 'supervisord.log'}",
        f"pidfile={settings.run_dir / 'supervisord.pid'}",
        f"directory={settings.home_dir}",
        "umask=027",  # logs and files the components create: not readable by others
        "loglevel=info",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
    ]
    for component in components:
        if not component.managed:
            continue
        assert component.command is not None
        lines += [
            f"[program:{component.name}]",
            "command=" + " ".join(_quote_arg(arg) for arg in component.command),
            "autostart=false",
            "autorestart=false",
            "startsecs=0",
            "startretries=0",
            f"stopsignal={component.stop_signal}",
            f"stopwaitsecs={component.stop_wait_seconds}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={log_path(settings, component.name)}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
            f"directory={component.cwd or settings.home_dir}",
        ]
        if component.user:
            lines.append(f"user={component.user}")
        if component.environment:
            lines.append(f"environment={_quote_env(component.environment)}")
        lines.append("")
    return "\n".join(lines)


def write_config(settings: Settings, components: list[Component]) -> bool:
    """Write supervisord.conf (mode 0600, it may hold settings); True when it changed."""
    path = config_path(settings)
    text = render_config(settings, components)
    if path.exists() and path.read_text() == text:
        return False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return True


@dataclass(frozen=True)
class ProcessInfo:
    """What supervisord knows of one program."""

    name: str
    state: str  # RUNNING, STOPPED, EXITED, FATAL, STARTING, BACKOFF, STOPPING, UNKNOWN
    pid: int
    started_at: float
    exit_status: int | None


class Supervisor:
    """A handle on this home's supervisord (started on demand)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._proxy: Any = None

    @property
    def rpc(self) -> Any:
        if self._proxy is None:
            transport = SupervisorTransport(None, None, f"unix://{socket_path(self.settings)}")
            self._proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        return self._proxy

    def running(self) -> bool:
        """True when this home's supervisord answers."""
        if not socket_path(self.settings).exists():
            return False
        try:
            return self.rpc.supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            self._proxy = None
            return False

    def ensure_running(self) -> None:
        """Start supervisord (daemonized) if it is not running; pick up config changes."""
        if self.running():
            added, changed, removed = self.rpc.supervisor.reloadConfig()[0]
            for name in removed:
                self._quietly(self.rpc.supervisor.stopProcessGroup, name)
                self._quietly(self.rpc.supervisor.removeProcessGroup, name)
            for name in changed:
                if self.info(name).state not in ("RUNNING", "STARTING"):
                    self._quietly(self.rpc.supervisor.removeProcessGroup, name)
                    self._quietly(self.rpc.supervisor.addProcessGroup, name)
            for name in added:
                self._quietly(self.rpc.supervisor.addProcessGroup, name)
            return
        own_log = self.settings.log_dir / "supervisord.log"  # opened before its umask applies
        os.close(os.open(own_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640))
        os.chmod(own_log, 0o640)
        program = find_program("supervisord") or "supervisord"
        # No AUTOGRAPH_* of the caller reaches the programs: each gets this stack's settings in
        # its own environment, and a setting this stack leaves unset must stay unset (a drill's
        # sandbox started by a gateway would otherwise write into the gateway's backup folder).
        commands.run([program, "-c", str(config_path(self.settings))], what="supervisord",
                     timeout=30, drop_inherited="AUTOGRAPH_")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.running():
                return
            time.sleep(0.1)
        raise OperationFailed(
            f"supervisord did not start; see {self.settings.log_dir / 'supervisord.log'}"
        )

    @staticmethod
    def _quietly(call: Any, *args: Any) -> None:
        with contextlib.suppress(xmlrpc.client.Fault):
            call(*args)

    def info(self, name: str) -> ProcessInfo:
        raw = self.rpc.supervisor.getProcessInfo(name)
        return _process_info(raw)

    def all_info(self) -> dict[str, ProcessInfo]:
        if not self.running():
            return {}
        return {raw["name"]: _process_info(raw) for raw in self.rpc.supervisor.getAllProcessInfo()}

    def start(self, name: str) -> None:
        """Start a program without waiting for it (health is waited on separately)."""
        try:
            self.rpc.supervisor.startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise OperationFailed(f"could not start {name}: {fault.faultString}") from None

    def stop(self, name: str) -> None:
        """Stop a program and wait until it is down (supervisord escalates to SIGKILL)."""
        try:
            self.rpc.supervisor.stopProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise OperationFailed(f"could not stop {name}: {fault.faultString}") from None

    def shutdown(self) -> None:
        """Stop supervisord itself and wait for its socket to go away."""
        if not self.running():
            return
        self._quietly(self.rpc.supervisor.shutdown)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.running():
            time.sleep(0.1)
        self._proxy = None


def _process_info(raw: dict[str, Any]) -> ProcessInfo:
    return ProcessInfo(
        name=raw["name"],
        state=raw["statename"],
        pid=int(raw["pid"]),
        started_at=float(raw["start"]),
        exit_status=raw.get("exitstatus"),
    )
