"""One settings object for every process (environment prefix ``AUTOGRAPH_``, optional ``.env``).

Settings are built once at an entry point (CLI, service app factory) and passed down.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from autograph.errors import ConfigError
from autograph.saved_offsite import saved_offsite

Port = int
ALERT_CHANNELS = ("console", "file", "email", "slack")
"""The alert channels' names (autograph.dr.alerts), as escalation levels may name them."""


class Settings(BaseSettings):
    """Everything configurable: ports, paths, credentials, intervals, thresholds."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOGRAPH_", env_file=".env", extra="ignore", validate_default=True
    )

    home: Path = Field(default=Path("var"), description="all state lives under this folder")
    host: str = "127.0.0.1"

    # Infrastructure (recovery priority 1).
    pg_port: Port = 5432
    pg_user: str = "autograph"
    pg_database: str = "autograph"
    pg_host: str | None = Field(default=None, description="external PostgreSQL: not started "
                                "by `up`, backed up over the network (default: HOST, ours)")
    pg_password: SecretStr | None = Field(default=None, description="default: HOME/secrets")
    pg_sslmode: str = Field(default="prefer", pattern="^(disable|allow|prefer|require|"
                            "verify-ca|verify-full)$", description="libpq sslmode")
    pg_replication_user: str | None = Field(
        default=None, description="WAL streaming and base backups (default: PG_USER)")
    pg_replication_password: SecretStr | None = None
    pg_bin_dir: Path | None = Field(default=None, description="default: newest installed")
    pg_os_user: str = Field(default="postgres", description="unprivileged user when run as root")
    redis_port: Port = 6379
    redis_url: SecretStr | None = Field(
        default=None, description="external Redis, redis://[:PASSWORD@]HOST:PORT/DB (a URL "
        "without a password uses HOME/secrets/redis-password)")
    s3_port: Port = 9000
    s3_endpoint: str | None = Field(default=None, description="external S3 server (MinIO, AWS)")
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    s3_stop_grace_seconds: int = Field(
        default=10, description="SeaweedFS can hang on SIGTERM: SIGKILL after this grace")
    app_buckets: tuple[str, ...] = ("diagrams", "exports", "uploads")

    # Application services (priorities 2 and 3).
    gateway_port: Port = 8080
    auth_port: Port = 8085
    diagram_port: Port = 8082
    ai_port: Port = 8084
    collaboration_port: Port = 8083
    export_port: Port = 8097
    git_port: Port = 8087
    integrations_port: Port = 8099
    svg_port: Port = 8096
    frontend_port: Port = 3000
    services: tuple[str, ...] | None = Field(
        default=None, description="application services to run (default: all)"
    )
    service_hosts: dict[str, str] = Field(
        default_factory=dict, description='where other services are (containers), JSON: '
        '{"auth": "auth-service"}; default HOST')
    secrets_path: Path | None = Field(
        default=None, description="credentials folder (default: HOME/secrets; containers: "
        "a mounted Secret)")

    # Auth.
    admin_email: str = "admin@autograph.local"
    admin_password: SecretStr | None = None
    admin_api_key: SecretStr | None = None
    admin_session_ttl_seconds: int = Field(
        default=1800, ge=60, le=86400,
        description="lifetime of a DR console session exchanged for the admin API key")
    session_ttl_seconds: int = 8 * 3600
    max_upload_bytes: int = 25 * 1024 * 1024

    # Backups.
    backup_dir: Path | None = Field(default=None, description="default: HOME/backups")
    backup_bucket_database: str = "autograph-backups"
    backup_bucket_objects: str = "minio-backups"
    backup_s3_endpoint: str | None = Field(default=None, description="secondary copy's S3 server")
    backup_s3_access_key: SecretStr | None = None
    backup_s3_secret_key: SecretStr | None = None
    database_backup_interval_seconds: int = 24 * 3600
    bucket_backup_interval_seconds: int = 7 * 24 * 3600
    base_backup_interval_seconds: int = Field(
        default=24 * 3600, description="physical base backups (with streamed WAL: PITR)")
    base_backups_keep: int = Field(default=2, ge=1, description="newest base backups kept")
    pre_restore_keep: int = Field(default=2, ge=1, description="databases kept for rollback "
                                  "after restores (<db>__pre_restore_<ts>), newest first")
    snapshot_interval_seconds: float = Field(
        default=120.0, ge=0, description="incremental bucket snapshots (SPEC §7); 0: off")
    outbox_interval_seconds: float = Field(
        default=1.0, ge=0, description="object outbox replication to the backup tiers; 0: off")
    outbox_alert_seconds: float = Field(
        default=60.0, gt=0, description="alert when a tier's protected point is this old")
    snapshot_keep_all_seconds: int = Field(default=3600, ge=0,
                                           description="every snapshot kept this long")
    snapshot_keep_hourly: int = Field(default=48, ge=0, description="then one per hour")
    snapshot_keep_daily: int = Field(default=14, ge=0, description="then one per day")
    scheduler_enabled: bool = True
    leases: str = Field(default="host", pattern="^(host|cluster)$", description="host: locks "
                        "in the backup folder (one host); cluster: also a lease in PostgreSQL "
                        "and the backup S3 store (gateways on several hosts)")
    lease_ttl_seconds: float = Field(default=60.0, ge=3,
                                     description="a dead holder's S3 lease expires after this")
    scheduler_poll_seconds: float = 30.0
    scheduler_startup_delay_seconds: float = Field(
        default=30.0, description="a run missed while down starts this long after start")
    scheduler_retry_seconds: float = Field(
        default=3600.0, description="wait after a failed scheduled run before retrying")

    # Off-site tier (its own S3 server and failure domain; off when no endpoint is set).
    offsite_s3_endpoint: str | None = Field(default=None, description="off-site S3 server URL")
    offsite_s3_region: str = "us-east-1"
    offsite_s3_bucket: str = "autograph-offsite"
    offsite_s3_prefix: str = Field(
        default="", pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9_-]*(/[A-Za-z0-9][A-Za-z0-9_-]*)*/?$",
        description="key prefix inside the bucket, e.g. 'site-a/'")
    offsite_s3_access_key: SecretStr | None = Field(
        default=None, description="default: HOME/secrets/offsite-s3-access-key")
    offsite_s3_secret_key: SecretStr | None = Field(
        default=None, description="default: HOME/secrets/offsite-s3-secret-key")
    offsite_encryption: bool = Field(default=True, description="encrypt what goes off-site")
    offsite_key: SecretStr | None = Field(
        default=None, description="KEY_ID:BASE64; default: HOME/secrets/offsite-key, "
                                  "generated at first start")
    offsite_wal_poll_seconds: float = Field(default=1.0, gt=0,
                                            description="how often the WAL shipper looks")
    offsite_sync_interval_seconds: float = Field(
        default=60.0, gt=0, description="how often the backlog of off-site copies is retried")
    wal_switch_seconds: int = Field(
        default=60, ge=0, description="the off-site shipper closes the WAL segment being "
                                      "written (pg_switch_wal) when it holds writes this old: "
                                      "the off-site RPO bound; 0: never")

    # Recovery objectives and drills.
    rto_target_seconds: int = 3600
    rpo_target_seconds: int = 300
    proof_enabled: bool = Field(
        default=True, description="the gateway deep-verifies backups and drills on a schedule")
    proof_interval_seconds: int = Field(
        default=24 * 3600, gt=0, description="deep verification of each kind's newest backup")
    proof_retry_seconds: int = Field(default=3600, ge=0,
                                     description="wait after a failed deep verification")
    drill_interval_seconds: int = Field(
        default=7 * 24 * 3600, gt=0, le=92 * 24 * 3600,
        description="sandbox drill (complete) every …; the plan's quarterly is the maximum")
    drill_nice_command: tuple[str, ...] = Field(
        default=("nice", "-n", "19", "ionice", "-c", "3"),
        description="prefix capping the scheduled drill's CPU and IO")

    # Alerting.
    alerts_log: Path | None = Field(default=None, description="default: HOME/log/alerts.log")
    smtp_host: str | None = None
    smtp_port: Port = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    alert_email_from: str = "autograph-alerts@localhost"
    alert_email_to: tuple[str, ...] = ()
    slack_webhook_url: SecretStr | None = None
    disk_usage_alert_percent: float = 80.0
    backup_storage_min_free_bytes: int = 1024**3
    unhealthy_alert_seconds: int = 300
    small_backup_fraction: float = 0.5
    monitor_enabled: bool = True
    monitor_interval_seconds: float = 30.0
    backup_overdue_margin_seconds: int = Field(
        default=2 * 3600, description="dead-man's switch: interval + this without a backup")
    unreachable_alert_checks: int = Field(
        default=2, description="consecutive failed probes before 'unreachable' fires")
    bucket_quota_bytes: dict[str, int] = Field(
        default_factory=dict, description='per-bucket quota, JSON: {"uploads": 10737418240}')
    quota_check_seconds: float = 600.0
    reference_check_seconds: float = Field(
        default=3600.0, ge=0, description="how often the monitor checks that every row naming "
        "an object (a diagram's canvas, an upload) has it in its bucket; 0: never")
    alert_escalation: tuple[tuple[float, str] | tuple[float, str, tuple[str, ...]], ...] = Field(
        default=(), description='escalation path, JSON [[minutes, "level"(, ["channel", ...])],'
        ' ...] from 0, e.g. [[0,"operations",["slack"]],[30,"lead",["email"]],'
        '[60,"coordinator"]]: an alert still active and not acknowledged is sent again to each '
        "level once, at its minute, on the level's channels (none named: every channel)")
    alert_retry_attempts: int = 3
    alert_backoff_seconds: float = 2.0
    metrics_public: bool = Field(
        default=False, description="serve /metrics without the admin token")
    webhook_destinations: str = Field(
        default="public", pattern="^(public|loopback|any)$",
        description="integration hub targets: public addresses only (SSRF guard), "
                    "loopback only (tests, sandboxes), or any")

    # Timeouts.
    health_timeout_seconds: float = 60.0

    @field_validator(
        "pg_port", "redis_port", "s3_port", "gateway_port", "auth_port", "diagram_port",
        "ai_port", "collaboration_port", "export_port", "git_port", "integrations_port",
        "svg_port", "frontend_port", "smtp_port",
    )
    @classmethod
    def _valid_port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"{value} is not a TCP port (1-65535)")
        return value

    @field_validator("alert_escalation")
    @classmethod
    def _valid_escalation(cls, value: tuple[tuple[Any, ...], ...]
                          ) -> tuple[tuple[float, str, tuple[str, ...]], ...]:
        minutes = [level[0] for level in value]
        names = [level[1].strip() for level in value]
        channels = [tuple(level[2]) if len(level) > 2 else () for level in value]
        if value and minutes[0] != 0:
            raise ValueError(f"the first escalation level is at minute 0, got {minutes[0]:g}")
        if any(b <= a for a, b in itertools.pairwise(minutes)):
            raise ValueError(f"escalation minutes must increase strictly, got {minutes}")
        if not all(names) or len(set(names)) != len(names):
            raise ValueError(f"escalation levels need distinct non-empty names, got {names}")
        unknown = sorted({c for named in channels for c in named} - set(ALERT_CHANNELS))
        if unknown:
            raise ValueError(f"escalation names unknown channel(s) {unknown}: choose from "
                             f"{', '.join(ALERT_CHANNELS)}")
        return tuple(zip(minutes, names, channels, strict=True))

    # Derived paths -----------------------------------------------------------------------
    @property
    def home_dir(self) -> Path:
        """The absolute home folder."""
        return self.home.expanduser().resolve()

    @property
    def secrets_dir(self) -> Path:
        return self.secrets_path or self.home_dir / "secrets"

    @property
    def run_dir(self) -> Path:
        return self.home_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.home_dir / "log"

    @property
    def data_dir(self) -> Path:
        return self.home_dir / "data"

    @property
    def backups_dir(self) -> Path:
        return (self.backup_dir or self.home_dir / "backups").expanduser().resolve()

    @property
    def dr_dir(self) -> Path:
        return self.home_dir / "dr"

    @property
    def alerts_log_path(self) -> Path:
        return self.alerts_log or self.log_dir / "alerts.log"

    @property
    def pg_bin(self) -> Path:
        """The PostgreSQL server binaries: the setting, else the newest Debian install."""
        if self.pg_bin_dir:
            return self.pg_bin_dir
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                       key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                       else 0)
        return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")

    @property
    def s3_url(self) -> str:
        """The application S3 endpoint URL."""
        return self.s3_endpoint or f"http://{self.host}:{self.s3_port}"

    @property
    def pg_address(self) -> str:
        """The PostgreSQL host: the external one, else ours."""
        return self.pg_host or self.host

    @property
    def pg_external(self) -> bool:
        """True when PostgreSQL is run by someone else (``up`` does not start it)."""
        return self.pg_host is not None

    @property
    def redis_external(self) -> bool:
        """True when Redis is run by someone else (``up`` does not start it)."""
        return self.redis_url is not None

    @property
    def s3_external(self) -> bool:
        """True when the application S3 server is run by someone else."""
        return self.s3_endpoint is not None

    def service_port(self, name: str) -> int:
        """The port of an application service by its stack name (``gateway``, ``auth`` …)."""
        return int(getattr(self, f"{name}_port"))

    def service_url(self, name: str) -> str:
        """The base URL of an application service by its stack name."""
        host = self.service_hosts.get(name, self.host)
        return f"http://{host}:{self.service_port(name)}"


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment (and ``.env``), with explicit overrides; the
    off-site store a machine recovery saved (:func:`save_offsite`) fills the off-site settings
    that neither names.

    Raises ConfigError with a one-line message naming the setting when a value is invalid.
    """
    settings = _build(overrides)
    if "offsite_s3_endpoint" not in settings.model_fields_set:
        saved = {name: value for name, value in saved_offsite(settings.secrets_dir).items()
                 if name not in settings.model_fields_set}
        if saved:
            settings = _build({**overrides, **saved})
    return settings


def _build(values: dict[str, object]) -> Settings:
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except SettingsError as exc:  # a list or mapping setting that is not JSON
        named = re.search(r'field "(\w+)"', str(exc))
        env = f"AUTOGRAPH_{named.group(1).upper()}" if named else "a setting"
        raise ConfigError(f"invalid setting {env}: not valid JSON") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "settings"
        env = f"AUTOGRAPH_{field.upper()}"
        raise ConfigError(f"invalid setting {env}: {first['msg']}") from None


def ensure_home(settings: Settings) -> None:
    """Create the home folder layout, or raise ConfigError if it is not writable."""
    home = settings.home_dir
    try:
        for folder in (home, settings.run_dir, settings.log_dir, settings.data_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if settings.secrets_path is None:  # a mounted secrets folder is not ours to change
            settings.secrets_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(settings.secrets_dir, 0o700)
        os.chmod(settings.log_dir, 0o750)
        for log in settings.log_dir.iterdir():  # made 0644 by earlier versions
            if log.is_file() and log.stat().st_mode & 0o027:
                os.chmod(log, log.stat().st_mode & 0o750)
        probe = home / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"invalid setting AUTOGRAPH_HOME: {home} is not writable ({exc.strerror})"
        ) from None
