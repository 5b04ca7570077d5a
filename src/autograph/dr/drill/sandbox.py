"""The drill's sandbox: a stack of its own in a temporary home on free ports, with an off-site
S3 server of its own, so the stack it was started beside is never touched."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from autograph.config import Settings, load_settings
from autograph.dr.drill import faults, offsite
from autograph.stack.health import port_free, private_port_range
from autograph.stack.lifecycle import Stack

SERVICE_PORTS = ("gateway", "auth", "diagram", "ai", "collaboration", "export", "git",
                 "integrations", "svg", "frontend")


def _free_ports(avoid: set[int], singles: int, block: int) -> tuple[list[int], int]:
    """``singles`` free ports and the first of ``block`` consecutive free ones."""
    rng = random.Random()
    chosen: list[int] = []
    ports = private_port_range()

    def usable(port: int) -> bool:
        return port not in avoid and port not in chosen and port_free("127.0.0.1", port)

    while len(chosen) < singles:
        port = rng.randrange(ports.start, ports.stop)
        if usable(port):
            chosen.append(port)
    while True:
        first = rng.randrange(ports.start, ports.stop - block)
        if all(usable(p) for p in range(first, first + block)):
            return chosen, first


def sandbox_settings(base: Settings, home: Path) -> Settings:
    """The base settings moved into ``home`` on free ports, with everything that could reach
    outside the sandbox (backup folder, external S3 endpoints, alert channels) reset."""
    avoid = {base.pg_port, base.redis_port, *range(base.s3_port, base.s3_port + 8)}
    avoid |= {base.service_port(name) for name in SERVICE_PORTS}
    singles, s3_port = _free_ports(avoid, 2 + len(SERVICE_PORTS), 8)
    values: dict[str, Any] = {
        name: getattr(base, name) for name in type(base).model_fields
        if name not in ("home",)
    }
    values.update({
        "home": home, "pg_port": singles[0], "redis_port": singles[1], "s3_port": s3_port,
        "backup_dir": None, "s3_endpoint": None, "s3_access_key": None, "s3_secret_key": None,
        "backup_s3_endpoint": None, "backup_s3_access_key": None,
        "backup_s3_secret_key": None, "offsite_s3_endpoint": None,
        "offsite_s3_access_key": None, "offsite_s3_secret_key": None, "offsite_key": None,
        "offsite_s3_prefix": "", "alerts_log": None, "smtp_host": None,
        "slack_webhook_url": None, "alert_email_to": (), "admin_password": None,
        "admin_api_key": None, "scheduler_enabled": False,  # the drill takes its own
        # External infrastructure (SPEC §11) stays outside: the sandbox runs its own.
        "host": "127.0.0.1", "pg_host": None, "pg_password": None, "pg_replication_user": None,
        "pg_replication_password": None, "redis_url": None, "service_hosts": {},
        "secrets_path": None,
    })
    for name, port in zip(SERVICE_PORTS, singles[2:], strict=True):
        values[f"{name}_port"] = port
    return load_settings(**values)


def make_sandbox(base: Settings) -> Stack:
    """A stack of its own in a new temporary home (traversable by the PostgreSQL user), its
    backups copied to an off-site S3 server of its own (started here, see :mod:`offsite`)."""
    home = Path(tempfile.mkdtemp(prefix="autograph-drill-"))
    os.chmod(home, 0o755)
    settings = sandbox_settings(base, home)
    used = {settings.pg_port, settings.redis_port, *range(settings.s3_port,
                                                          settings.s3_port + 8)}
    used |= {settings.service_port(name) for name in SERVICE_PORTS}
    _, offsite_port = _free_ports(used, 0, 8)
    try:
        extra = offsite.start_offsite(base, home, offsite_port)
        values = {name: getattr(settings, name) for name in type(settings).model_fields}
        return Stack(load_settings(**{**values, **extra}))
    except BaseException:  # an interrupted drill (stopped from the console) too
        server = offsite.offsite_of(home)
        if server is not None:
            offsite.stop_offsite(server)
        shutil.rmtree(home, ignore_errors=True)
        raise


LOG_TAIL_BYTES = 1 << 20  # per component log kept with a failed drill's report


def keep_sandbox_logs(log_dir: Path, report_dir: Path) -> Path:
    """Copy the last MiB of each sandbox log into ``report_dir/sandbox-logs`` (the sandbox,
    and the log paths its report names, are deleted after the drill); returns that folder."""
    target = report_dir / "sandbox-logs"
    target.mkdir(parents=True, exist_ok=True)
    for log in sorted(log_dir.glob("*.log")):
        with contextlib.suppress(OSError), log.open("rb") as source:
            source.seek(max(0, log.stat().st_size - LOG_TAIL_BYTES))
            (target / log.name).write_bytes(source.read())
    return target


def remove_sandbox(stack: Stack) -> None:
    """Stop the sandbox's processes and delete its home."""
    with contextlib.suppress(Exception):
        stack.down()
    with contextlib.suppress(Exception):
        faults.kill_everything(stack, timeout=5)
    for port in stack.component("s3").ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                path.unlink()
    shutil.rmtree(stack.settings.home_dir, ignore_errors=True)
    server = offsite.offsite_of(stack.settings.home_dir)
    if server is not None:
        offsite.stop_offsite(server)
