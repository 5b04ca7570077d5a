"""Restore test of a base backup + streamed WAL: a scratch cluster replayed to a point whose
row counts were taken on the live database, then compared table by table.

The live counts are taken in one REPEATABLE READ snapshot whose first statement reads the WAL
position; a WAL record is then written after it (``pg_logical_emit_message``) so that replay can
reach it, and the receiver is waited on until it holds it. The scratch cluster (the backup
unpacked into ``DATA/postgres.proof_scratch_<ts>``, the WAL staged, ``recovery_target_lsn`` with
``inclusive = false``) replays exactly the transactions committed before that position and
pauses there as a hot standby; its counts must equal the live ones. It runs on its own port,
without a unix socket, as the server's unprivileged user when we are root, niced; its folder is
removed afterwards (after a SIGKILL: at the next start, :func:`.scratch.clean_leftovers`).
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import psycopg

from autograph import commands
from autograph.config import Settings
from autograph.dr.models import BackupEntry
from autograph.dr.postgres import data_folder, wal_files
from autograph.dr.postgres.server import PgServer, row_counts
from autograph.dr.proof import scratch
from autograph.errors import DependencyDown, IntegrityError, OperationFailed
from autograph.stack.infra import WALSTREAM_APPLICATION_NAME

REPLAY_TIMEOUT = 1800


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def live_point(server: PgServer) -> tuple[str, dict[str, int]]:
    """``(lsn, counts)``: every table's rows in one snapshot and the WAL position it saw;
    then a WAL record written after it, and the receiver waited on until it holds it."""
    with server.connect(server.live_database, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        lsn = str(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
        counts = row_counts(conn, parallel=False)
        conn.rollback()
    with server.connect() as conn:
        after = str(conn.execute("SELECT pg_logical_emit_message(false, 'autograph-proof', "
                                 "'restore test')::text").fetchone()[0])
        conn.execute("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 60
        while True:
            row = conn.execute("SELECT flush_lsn > %s::pg_lsn FROM pg_stat_replication "
                               "WHERE application_name = %s",
                               (after, WALSTREAM_APPLICATION_NAME)).fetchone()
            if row is not None and row[0]:
                return lsn, counts
            if time.monotonic() > deadline:
                raise OperationFailed(f"the WAL receiver does not hold {after} after 60 s "
                                      "(is walstream running?)")
            time.sleep(0.2)


def _recovery_conf(folder: Path, lsn: str, user: str | None) -> None:
    lines = ["restore_command = '/bin/false'", "recovery_target_timeline = 'latest'",
             f"recovery_target_lsn = '{lsn}'", "recovery_target_inclusive = false",
             "recovery_target_action = 'pause'"]
    (folder / data_folder.RECOVERY_CONF).write_text("\n".join(lines) + "\n")
    (folder / "recovery.signal").write_text("")
    data_folder.chown_tree(folder, user)


def _as_user(user: str | None, args: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *args] if user else args


def _start(settings: Settings, folder: Path, port: int, user: str | None) -> None:
    """Start the scratch postmaster detached (``pg_ctl``, so that it outlives a killed
    verification and is found by its ``postmaster.pid`` at the next start)."""
    options = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
               "-c hot_standby=on -c archive_mode=off -c shared_buffers=32MB "
               "-c logging_collector=off")
    args = ["nice", "-n", "10", str(settings.pg_bin / "pg_ctl"), "-D", str(folder), "-l",
            str(folder / "proof.log"), "-o", options, "-w", "-t", str(REPLAY_TIMEOUT), "start"]
    result = commands.run(_as_user(user, args), what="pg_ctl start (scratch cluster)",
                          timeout=REPLAY_TIMEOUT + 30, check=False)
    if result.returncode != 0:
        raise OperationFailed("the scratch cluster did not start: " + _log_tail(folder))


def _connect(server: PgServer, folder: Path, port: int) -> psycopg.Connection:
    """A connection to the scratch cluster once replay has paused at the target (a read-only
    hot standby: no end-of-recovery checkpoint to pay for a throw-away copy). Raises
    OperationFailed when it stopped (the target was never reached)."""
    deadline = time.monotonic() + REPLAY_TIMEOUT
    while True:
        try:
            conn = psycopg.connect(host="127.0.0.1", port=port, user=server.user,
                                   password=server.password, dbname=server.live_database,
                                   autocommit=False, connect_timeout=10)
        except psycopg.OperationalError as exc:
            if not (folder / "postmaster.pid").exists():
                raise OperationFailed("the scratch cluster stopped during replay: "
                                      + _log_tail(folder)) from None
            if time.monotonic() > deadline:
                raise DependencyDown(f"scratch cluster on port {port}: {exc}") from None
            time.sleep(0.2)
            continue
        while _scalar(conn, "SELECT pg_get_wal_replay_pause_state()") != "paused":
            if time.monotonic() > deadline:
                conn.close()
                raise OperationFailed(f"the scratch cluster did not reach its target in "
                                      f"{REPLAY_TIMEOUT} s")
            time.sleep(0.1)
        return conn


def _scalar(conn: psycopg.Connection, query: str) -> object:
    row = conn.execute(query).fetchone()
    return row[0] if row else None


def _log_tail(folder: Path) -> str:
    log = folder / "proof.log"
    return commands.tail(log.read_text(errors="replace"), 3) if log.exists() else "no log"


def _counts(server: PgServer, folder: Path, port: int) -> dict[str, int]:
    with _connect(server, folder, port) as conn:
        return row_counts(conn, parallel=False)


def needed_bytes(settings: Settings, entry: BackupEntry) -> int:
    """Room the scratch cluster takes: the unpacked backup and a copy of the streamed WAL."""
    sysid = str(entry.extra.get("system_identifier", ""))
    return entry.size_bytes + sum(scratch.tree_size(p) for p in
                                  wal_files.wal_sources(settings, sysid))


def prove_base(settings: Settings, server: PgServer, archive: Path, entry: BackupEntry,
               stamp: str) -> str:
    """Unpack ``archive`` (the checked copy of ``entry``) into a scratch cluster, replay the
    streamed WAL to a point counted on the live database, compare; always remove it.

    Raises IntegrityError (counts differ), OperationFailed, DependencyDown."""
    folder = scratch.cluster_dir(settings, stamp)
    user = data_folder.pg_user(settings)
    lsn, live = live_point(server)
    try:
        data_folder.extract_base_backup(archive, folder, user)
        sysid = str(entry.extra["system_identifier"])
        segments = wal_files.stage_wal(wal_files.wal_sources(settings, sysid),
                                       folder / "pg_wal", user)
        _recovery_conf(folder, lsn, user)
        port = free_port()
        _start(settings, folder, port, user)
        restored = _counts(server, folder, port)
    finally:
        scratch.stop_cluster(folder)
        shutil.rmtree(folder, ignore_errors=True)
    differ = [f"{t}: live {live.get(t)} vs restored {restored.get(t)}"
              for t in sorted(set(live) | set(restored)) if live.get(t) != restored.get(t)]
    if differ:
        raise IntegrityError(f"{entry.name} + WAL replayed to {lsn}: row counts differ from "
                             "the live database: " + "; ".join(differ[:5]))
    return (f"{entry.name} + {segments} WAL segments replayed in a scratch cluster to {lsn}: "
            f"{len(live)} tables, {sum(live.values())} rows, row counts equal the live "
            "database's at that point")
