"""The infrastructure components: PostgreSQL, Redis and the S3 server (MinIO or SeaweedFS)."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import sys
import tempfile
from pathlib import Path

from autograph import commands
from autograph.config import Settings
from autograph.errors import ConfigError
from autograph.s3.boto import app_client, backup_client, ensure_buckets
from autograph.schema.runner import MigrationRun, migrate
from autograph.secrets import Credentials
from autograph.stack.health import Health, Probe


def find_program(name: str) -> str | None:
    """Locate an executable beside the running interpreter (the venv's bin) or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which(name)


# PostgreSQL --------------------------------------------------------------------------------

def postgres_os_user(settings: Settings) -> str | None:
    """The unprivileged user PostgreSQL runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(settings.pg_os_user)
    except KeyError:
        raise ConfigError(
            f"invalid setting AUTOGRAPH_PG_OS_USER: no user {settings.pg_os_user!r} to run "
            "PostgreSQL unprivileged (PostgreSQL refuses to run as root)"
        ) from None
    return settings.pg_os_user


# Where PostgreSQL's files go when its user cannot reach the home (root's 0700 home folder).
FALLBACK_PG_ROOT = Path("/var/lib/autograph")


def user_can_reach(path: Path, user: str) -> bool:
    """True when ``user`` may traverse every existing folder from / down to ``path``
    (mode bits only, as root we cannot ask the kernel on its behalf)."""
    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    for folder in [*reversed(path.parents), path]:
        try:
            st = folder.stat()
        except FileNotFoundError:
            break
        if st.st_uid == entry.pw_uid:
            bit = 0o100
        elif st.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def postgres_home(settings: Settings) -> Path:
    """The folder holding the cluster (``postgres``), the clusters kept by recoveries and, when
    outside the home, the server's sockets.

    HOME/data, unless PostgreSQL runs as another user who cannot traverse the home (a checkout
    in root's 0700 home folder): then ``/var/lib/autograph/<home id>``, where it stays once a
    cluster is there.
    """
    inside = settings.data_dir
    user = postgres_os_user(settings)
    if user is None:
        return inside
    digest = hashlib.sha256(str(settings.home_dir).encode()).hexdigest()[:16]
    outside = FALLBACK_PG_ROOT / digest
    if (outside / "postgres" / "PG_VERSION").exists():
        return outside
    return inside if user_can_reach(inside, user) else outside


def postgres_data_dir(settings: Settings) -> Path:
    """The live cluster's data folder."""
    return postgres_home(settings) / "postgres"


def postgres_socket_dir(settings: Settings) -> Path:
    """The server's unix socket folder (somewhere its user can reach)."""
    home = postgres_home(settings)
    return settings.run_dir / "postgres" if home == settings.data_dir else home / "sockets"


def _prepare_postgres_home(settings: Settings, user: str | None) -> Path:
    """Create the folder of :func:`postgres_home`; outside the home it is the server user's
    (0700) and names the home it belongs to."""
    home = postgres_home(settings)
    if home == settings.data_dir:
        return home
    FALLBACK_PG_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "AUTOGRAPH_HOME").write_text(f"{settings.home_dir}\n")
    _chown(home, user)
    return home


def postgres_command(settings: Settings) -> tuple[str, ...]:
    return (str(settings.pg_bin / "postgres"), "-D", str(postgres_data_dir(settings)))


def _chown(path: Path, user: str | None) -> None:
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _as_user(user: str | None, args: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *args] if user else args


POSTGRES_CONF = """\
# Written by autograph; local overrides belong in postgresql.auto.conf (ALTER SYSTEM).
listen_addresses = '{host}'
port = {port}
unix_socket_directories = '{socket_dir}'
password_encryption = scram-sha-256
max_connections = 200
shared_buffers = 256MB
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
wal_keep_size = 256MB
logging_collector = off
log_destination = 'stderr'
include_if_exists = 'autograph-recovery.conf'
"""

PG_HBA = """\
# TCP with a password only; the unix socket only for the server's own OS user.
local   all   all                 peer
host    all   all   127.0.0.1/32  scram-sha-256
host    all   all   ::1/128       scram-sha-256
host    replication   all   127.0.0.1/32  scram-sha-256
"""


def prepare_postgres(settings: Settings, creds: Credentials) -> None:
    """initdb on first start (as the unprivileged user, from a folder it can reach), then
    (re)write the server config."""
    user = postgres_os_user(settings)
    reachable = _prepare_postgres_home(settings, user)
    data = postgres_data_dir(settings)
    sockets = postgres_socket_dir(settings)
    sockets.mkdir(parents=True, exist_ok=True)
    _chown(sockets, user)
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if any(data.iterdir()):
            raise ConfigError(f"{data} is not empty but holds no PostgreSQL cluster")
        _chown(data, user)
        os.chmod(data, 0o700)
        with tempfile.NamedTemporaryFile("w", dir=reachable, delete=False) as pwfile:
            pwfile.write(creds.pg_password + "\n")
        try:
            _chown(Path(pwfile.name), user)
            commands.run(
                _as_user(user, [
                    str(settings.pg_bin / "initdb"), "-D", str(data), "-U", settings.pg_user,
                    "--pwfile", pwfile.name, "--auth-local=peer", "--auth-host=scram-sha-256",
                    "-E", "UTF8", "--locale=C.UTF-8",
                ]),
                what="initdb",
                timeout=120,
                cwd=reachable,
            )
        finally:
            os.unlink(pwfile.name)
    conf = POSTGRES_CONF.format(host=settings.host, port=settings.pg_port, socket_dir=sockets)
    for name, text in (("postgresql.conf", conf), ("pg_hba.conf", PG_HBA)):
        target = data / name
        target.write_text(text)
        _chown(target, user)


def ensure_database(settings: Settings, creds: Credentials) -> None:
    """Create the application database if it does not exist (after a complete loss, say)."""
    import psycopg

    from autograph.connections import pg_kwargs

    with psycopg.connect(**pg_kwargs(settings, creds, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (settings.pg_database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{settings.pg_database}"')


def prepare_database(settings: Settings, creds: Credentials) -> MigrationRun:
    """The application database exists and its schema is current: run once PostgreSQL is
    healthy, before any service starts (``up``, ``bootstrap``).

    Raises OperationFailed (a migration failed), DependencyDown (PostgreSQL unreachable).
    """
    from autograph.connections import pg_kwargs

    ensure_database(settings, creds)
    return migrate(pg_kwargs(settings, creds))


# Redis -------------------------------------------------------------------------------------

def redis_conf_path(settings: Settings) -> Path:
    return settings.run_dir / "redis.conf"


def redis_command(settings: Settings) -> tuple[str, ...]:
    program = find_program("redis-server") or "/usr/bin/redis-server"
    return (program, str(redis_conf_path(settings)))


def prepare_redis(settings: Settings, creds: Credentials) -> None:
    """Write redis.conf (mode 0600: it holds the password)."""
    data = settings.data_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    conf = (
        f"bind {settings.host}\nport {settings.redis_port}\nprotected-mode yes\n"
        f"requirepass {creds.redis_password}\ndir {data}\ndaemonize no\n"
        "save \"\"\nappendonly no\nloglevel warning\nlogfile \"\"\n"
    )
    path = redis_conf_path(settings)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(conf)


# S3 ------------------------------------------------------------------------------------------

def s3_engine(settings: Settings) -> str:
    """``external`` when an endpoint is configured, ``minio`` when installed, else ``seaweedfs``."""
    if settings.s3_endpoint:
        return "external"
    if find_program("minio"):
        return "minio"
    return "seaweedfs"


def s3_ports(settings: Settings) -> tuple[int, ...]:
    """The ports the S3 server listens on (SeaweedFS needs several besides the S3 port)."""
    engine = s3_engine(settings)
    if engine == "external":
        return ()
    if engine == "minio":
        return (settings.s3_port, settings.s3_port + 1)
    return tuple(settings.s3_port + offset for offset in range(8))


def s3_config_path(settings: Settings) -> Path:
    return settings.run_dir / "s3-identities.json"


def s3_command(settings: Settings) -> tuple[str, ...] | None:
    """The S3 server command line; None when an external endpoint is used. No secrets."""
    engine = s3_engine(settings)
    data = settings.data_dir / "s3"
    if engine == "external":
        return None
    if engine == "minio":
        return (find_program("minio") or "minio", "server", str(data),
                "--address", f"{settings.host}:{settings.s3_port}",
                "--console-address", f"{settings.host}:{settings.s3_port + 1}")
    base = settings.s3_port
    ports = {
        "master.port": base + 1, "volume.port": base + 2, "filer.port": base + 3,
        "s3.port.grpc": base + 4, "master.port.grpc": base + 5,
        "volume.port.grpc": base + 6, "filer.port.grpc": base + 7,
    }
    args = [find_program("weed") or "weed", "server", f"-dir={data}", f"-ip={settings.host}",
            f"-ip.bind={settings.host}", "-s3", f"-s3.port={base}",
            f"-s3.config={s3_config_path(settings)}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=512", "-volume.max=300"]
    args += [f"-{flag}={port}" for flag, port in ports.items()]
    return tuple(args)


def s3_environment(settings: Settings, creds: Credentials) -> dict[str, str]:
    if s3_engine(settings) == "minio":
        return {"MINIO_ROOT_USER": creds.s3_access_key, "MINIO_ROOT_PASSWORD": creds.s3_secret_key}
    return {}


def prepare_s3(settings: Settings, creds: Credentials) -> None:
    """Create the data folder and (SeaweedFS) the identities file that disables anonymous use."""
    (settings.data_dir / "s3").mkdir(parents=True, exist_ok=True)
    if s3_engine(settings) != "seaweedfs":
        return
    identities = {
        "identities": [
            {
                "name": "autograph",
                "credentials": [
                    {"accessKey": creds.s3_access_key, "secretKey": creds.s3_secret_key}
                ],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path = s3_config_path(settings)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(identities, handle)


def ensure_s3_buckets(settings: Settings, creds: Credentials) -> None:
    """Create the application buckets and the backup buckets."""
    ensure_buckets(app_client(settings, creds), list(settings.app_buckets))
    ensure_buckets(backup_client(settings, creds),
                   [settings.backup_bucket_database, settings.backup_bucket_objects])


# WAL streaming ---------------------------------------------------------------------------------

WALSTREAM_APPLICATION_NAME = "autograph_walstream"
"""How the WAL receiver names itself to PostgreSQL (``pg_stat_replication``)."""


def streaming_lag_bytes(settings: Settings, creds: Credentials) -> int | None:
    """Bytes of WAL written by the server but not yet flushed by the receiver (None: not
    streaming)."""
    import psycopg

    from autograph.connections import pg_kwargs

    with psycopg.connect(**pg_kwargs(settings, creds, "postgres", connect_timeout=3)) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint "
            "FROM pg_stat_replication WHERE application_name = %s", (WALSTREAM_APPLICATION_NAME,)
        ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def walstream_probe(settings: Settings, creds: Credentials) -> Probe:
    """Healthy when the server sees our WAL receiver streaming."""

    def probe() -> Health:
        try:
            lag = streaming_lag_bytes(settings, creds)
        except Exception as exc:  # PostgreSQL down: the receiver cannot be streaming
            return Health(False, f"PostgreSQL unreachable ({type(exc).__name__})")
        if lag is None:
            return Health(False, "not streaming")
        return Health(True, f"streaming, {lag} bytes behind")

    return probe


# Off-site shipper ------------------------------------------------------------------------------

def offsite_status_path(settings: Settings) -> Path:
    """The off-site shipper's heartbeat and status (``autograph.dr.offsite.shipper``)."""
    return settings.backups_dir / "offsite" / "shipper.json"


def offsite_probe(settings: Settings) -> Probe:
    """Healthy while the shipper writes its status (its passes run every second or so); the
    off-site *store* being down is an alert, not the shipper's ill health."""

    def probe() -> Health:
        import time

        path = offsite_status_path(settings)
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return Health(False, "no status written yet")
        limit = max(10.0, 5 * settings.offsite_wal_poll_seconds)
        if age > limit:
            return Health(False, f"status {age:.0f} s old")
        return Health(True, f"shipping (status {age:.1f} s old)")

    return probe
