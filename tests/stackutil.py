"""Test support: free ports and throw-away homes for real stacks (never the default ports)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

from autograph.config import Settings, load_settings
from autograph.stack.health import port_free, private_port_range

_used: set[int] = set()


def free_port_block(size: int = 1) -> int:
    """The first port of ``size`` consecutive free ports not handed out before in this run,
    outside the kernel's ephemeral range (see ``private_port_range``)."""
    ports = private_port_range()
    start, end = ports.start, ports.stop
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))  # a different starting point in every test process
    candidate = start + probe.getsockname()[1] % (end - start)
    probe.close()
    while True:
        if candidate + size >= end:
            candidate = start
        block = range(candidate, candidate + size)
        if all(p not in _used and port_free("127.0.0.1", p) for p in block):
            _used.update(block)
            return candidate
        candidate += size


def make_home(prefix: str = "autograph-test-") -> Path:
    """A temporary home folder the unprivileged PostgreSQL user can traverse."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(home, 0o755)
    return home


def remove_home(home: Path) -> None:
    """Delete a test home (kept for debugging when AUTOGRAPH_TEST_KEEP_HOMES is set)."""
    if not os.environ.get("AUTOGRAPH_TEST_KEEP_HOMES"):
        shutil.rmtree(home, ignore_errors=True)


def stack_settings(home: Path, **overrides: object) -> Settings:
    """Settings for a stack on free ports in ``home``; infrastructure only unless overridden."""
    values: dict[str, object] = {
        "home": home,
        "pg_port": free_port_block(),
        "redis_port": free_port_block(),
        "s3_port": free_port_block(8),
        "services": (),
        "health_timeout_seconds": 60.0,
        "scheduler_enabled": False, "snapshot_interval_seconds": 0, "proof_enabled": False,
        "s3_stop_grace_seconds": 2,
    }
    for service in ("gateway", "auth", "diagram", "ai", "collaboration", "export", "git",
                    "integrations", "svg", "frontend"):
        values[f"{service}_port"] = free_port_block()
    values.update(overrides)
    return load_settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as AUTOGRAPH_* environment variables (for CLI runs and subprocesses)."""
    from autograph.stack.components import _service_environment

    return {k: v for k, v in _service_environment(settings).items() if k.startswith("AUTOGRAPH_")}
