"""Point-in-time recovery of a PostgreSQL this machine does not run (SPEC §11).

An external server's data folder is not ours to replace: recovery builds the recovered cluster
in a new local folder from a base backup plus the streamed WAL, starts it on a loopback port,
lets it replay and promote, and hands the operator a running, checked copy with the commands
that make it the database again (dump it back into the external server, or serve from it).
The external server is never touched. Nothing falls back to this silently: it is asked for
(``backup base recover --into DIR``), and ``recover`` without it refuses on an external server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from autograph import commands
from autograph.clock import isoformat
from autograph.dr.models import ProgressFn, no_progress
from autograph.dr.ops import locks
from autograph.dr.postgres.data_folder import chown_tree, extract_base_backup, pg_user
from autograph.dr.postgres.physical import KIND, PhysicalBackupManager
from autograph.dr.postgres.server import PgServer, row_counts
from autograph.dr.postgres.wal_files import stage_wal, wal_sources
from autograph.errors import AutographError, InvalidInput, OperationFailed
from autograph.schema.runner import migrate


@dataclass(frozen=True)
class LocalRecovery:
    """A recovered cluster running on this machine, and what to do with it."""

    backup_name: str
    target_time: str | None
    wal_segments: int
    replayed_to: str | None
    data_dir: str
    port: int
    table_rows: dict[str, int]
    duration_seconds: float
    instructions: str
    schema: str = ""


def recover_into(manager: PhysicalBackupManager, data_dir: Path, port: int, *,
                 name: str | None = None, target_time: datetime | None = None,
                 progress: ProgressFn = no_progress) -> LocalRecovery:
    """Build the recovered cluster in ``data_dir`` (new or empty), start it on 127.0.0.1:``port``,
    wait until it has replayed the WAL and promoted, and migrate its application database.

    Raises InvalidInput (folder not empty), NotFound (no base backup), IntegrityError (no
    intact copy), OperationFailed (the cluster did not start or promote; it is stopped and its
    log named).
    """
    began = time.monotonic()
    data_dir = data_dir.expanduser().resolve()
    if data_dir.exists() and any(data_dir.iterdir()):
        raise InvalidInput(f"{data_dir} is not empty: recovery builds a new cluster there")
    settings = manager.settings
    entry = manager.catalog.get(name) if name else manager.latest(target_time)
    sysid = str(entry.extra["system_identifier"])
    user = pg_user(settings)
    with locks.acquire(settings.backups_dir, KIND, "restore", entry.name):
        fetched = manager.catalog.fetch(entry.name)
        progress("unpack base backup", None)
        extract_base_backup(fetched.path, data_dir, user)
        segments = stage_wal(wal_sources(settings, sysid), data_dir / "pg_wal", user)
        _write_recovery_settings(data_dir, target_time, user)
        progress("replay WAL and promote", None)
        local = replace(manager.server, host="127.0.0.1", port=port, sslmode="prefer")
        _start(manager, data_dir, port, user)
        try:
            replayed = _wait_promoted(local)
            rows: dict[str, int] = {}
            schema = f"no database {settings.pg_database} to migrate"
            if local.database_exists(settings.pg_database):
                schema = migrate(local.conninfo(settings.pg_database)).summary()
                with local.connect(settings.pg_database) as conn:
                    rows = row_counts(conn)
        except AutographError as exc:
            _stop(manager, data_dir, user)
            raise OperationFailed(f"recovered cluster in {data_dir} did not come up: "
                                  f"{exc.message} (log: {data_dir / 'recovery.log'})") from None
    return LocalRecovery(
        backup_name=entry.name, target_time=isoformat(target_time) if target_time else None,
        wal_segments=len(segments), replayed_to=replayed, data_dir=str(data_dir), port=port,
        table_rows=rows, duration_seconds=round(time.monotonic() - began, 3),
        instructions=instructions(manager, data_dir, port), schema=schema)


def instructions(manager: PhysicalBackupManager, data_dir: Path, port: int) -> str:
    """What the operator does next: the recovered cluster is a separate, writable copy."""
    s = manager.settings
    bin_dir = s.pg_bin
    ext = f"-h {s.pg_address} -p {s.pg_port} -U {s.pg_user}"
    return (
        f"The recovered cluster runs on 127.0.0.1:{port} from {data_dir} (promoted, writable); "
        f"the external server {s.pg_address}:{s.pg_port} was not changed.\n"
        f"To put the data back into the external server (it keeps its role as primary):\n"
        f"  {bin_dir}/pg_dump -Fc -h 127.0.0.1 -p {port} -U {s.pg_user} -f recovered.dump "
        f"{s.pg_database}\n"
        f"  {bin_dir}/pg_restore --clean --if-exists --exit-on-error {ext} -d {s.pg_database} "
        f"recovered.dump\n"
        f"To make the recovered cluster the database instead: stop the services, set "
        f"AUTOGRAPH_PG_HOST/AUTOGRAPH_PG_PORT to this machine (listen_addresses and pg_hba.conf "
        f"in {data_dir} decide who may connect), start them, and take a new base backup.\n"
        f"To stop it: {bin_dir}/pg_ctl -D {data_dir} stop")


def _write_recovery_settings(data: Path, target_time: datetime | None, user: str | None) -> None:
    """Recovery settings in postgresql.auto.conf (read last, so they win over the external
    server's own configuration copied in the base backup)."""
    lines = ["restore_command = '/bin/false'", "recovery_target_timeline = 'latest'"]
    if target_time is not None:
        moment = target_time.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        lines += [f"recovery_target_time = '{moment}'", "recovery_target_action = 'promote'"]
    with (data / "postgresql.auto.conf").open("a") as handle:
        handle.write("\n# autograph: point-in-time recovery\n" + "\n".join(lines) + "\n")
    (data / "recovery.signal").write_text("")
    for stale in ("postmaster.pid", "postmaster.opts"):
        (data / stale).unlink(missing_ok=True)
    chown_tree(data, user)


def _as_user(user: str | None, args: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *args] if user else args


def _start(manager: PhysicalBackupManager, data: Path, port: int, user: str | None) -> None:
    """Start the recovered cluster on loopback only, its socket in its own folder."""
    options = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data} "
               "-c archive_mode=off")
    commands.run(_as_user(user, [str(manager.settings.pg_bin / "pg_ctl"), "-D", str(data),
                                 "-l", str(data / "recovery.log"), "-o", options, "-w",
                                 "-t", "600", "start"]),
                 what="pg_ctl start (recovered cluster)", timeout=620)


def _stop(manager: PhysicalBackupManager, data: Path, user: str | None) -> None:
    commands.run(_as_user(user, [str(manager.settings.pg_bin / "pg_ctl"), "-D", str(data),
                                 "-m", "fast", "-w", "stop"]),
                 what="pg_ctl stop (recovered cluster)", timeout=120, check=False)


def _wait_promoted(server: PgServer, timeout: float = 600.0) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with server.connect() as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return str(conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0])
        except AutographError:
            pass
        time.sleep(0.2)
    raise OperationFailed(f"still in recovery after {timeout:.0f} s")
