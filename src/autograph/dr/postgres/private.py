"""A restored cluster replayed and promoted on a private socket, where its roles are given the
stack's current passwords before anything else can reach it.

Why: a cluster restored from a base backup carries the role passwords of the machine that made
it. After a complete loss the stack has new secrets (or the kit's), so a login over TCP with the
current password fails and point-in-time recovery cannot even be watched. The restored server is
therefore first started with ``listen_addresses = ''`` and ``trust`` on a unix socket in a
folder only its owner (and root) can enter; there it replays, promotes, gets
``ALTER ROLE … PASSWORD`` with the current secret and its schema migrated (so no service ever
sees an older schema); then it is stopped, and the stack starts it as usual (TCP, SCRAM).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from autograph import commands
from autograph.config import Settings
from autograph.errors import AutographError, OperationFailed
from autograph.schema.runner import migrate

PRIVATE_HBA = "local all all trust\n"
LOG_NAME = "server.log"  # in the private socket folder


@dataclass(frozen=True)
class PrivateServer:
    """A cluster running with no TCP listener, reachable only through ``socket_dir``."""

    settings: Settings
    data_dir: Path
    socket_dir: Path

    def conninfo(self, dbname: str) -> dict[str, Any]:
        """psycopg keyword arguments for ``dbname`` over the private socket (no password)."""
        return {"host": str(self.socket_dir), "port": self.settings.pg_port,
                "user": self.settings.pg_user, "dbname": dbname}

    def migrate(self) -> str:
        """Bring the application database's schema up to date before the cluster listens (a
        base backup taken before a migration lacks its tables); returns what was done, or
        why nothing was (no application database yet: ``up`` creates and migrates it)."""
        database = self.settings.pg_database
        with self.connect() as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (database,)).fetchone()
        if not found:
            return f"no database {database} to migrate"
        return migrate(self.conninfo(database)).summary()

    def connect(self) -> Any:
        """A connection as the stack's superuser over the private socket (no password)."""
        try:
            return psycopg.connect(host=str(self.socket_dir), port=self.settings.pg_port,
                                   user=self.settings.pg_user, dbname="postgres",
                                   autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise OperationFailed(f"restored cluster: {str(exc).strip()[:200]}") from None

    def wait_promoted(self, timeout: float = 600.0) -> str:
        """Wait until recovery has ended; return the current WAL position (LSN).

        Raises OperationFailed with the server log's reason as soon as the server has exited
        (PostgreSQL shuts down when the WAL ends before the recovery target: waiting on would
        only poll a dead socket until ``timeout``), or when still in recovery at ``timeout``.
        """
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                with self.connect() as conn:
                    if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        return str(conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0])
            except AutographError as exc:
                last = exc.message
                if not self.running():
                    raise OperationFailed("the restored cluster stopped during recovery: "
                                          f"{self.failure()}") from None
            time.sleep(0.2)
        raise OperationFailed(f"PostgreSQL still in recovery after {timeout:.0f} s {last}")

    def running(self) -> bool:
        """Whether the cluster's postmaster is still alive (its pid file names it)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):  # no pid file: shut down (or never up)
            return False
        return commands.pid_alive(pid)

    def failure(self) -> str:
        """Why the server stopped (see :func:`_why_stopped`)."""
        return _why_stopped(self.socket_dir / LOG_NAME)

    def set_password(self, role: str, password: str) -> None:
        """Give ``role`` the stack's current password (never logged: statement logging off)."""
        with self.connect() as conn:
            conn.execute("SET log_statement = 'none'")
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))


def _why_stopped(log: Path) -> str:
    """A server log's FATAL/PANIC lines (the cause), else its last lines."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    fatal = [line.split(":  ", 1)[-1].strip() for line in text.splitlines()
             if "FATAL:" in line or "PANIC:" in line]
    return "; ".join(fatal[-2:]) if fatal else commands.tail(text)


def _as_user(user: str | None, args: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *args] if user else args


def _chown(path: Path, user: str | None) -> None:
    if user:
        shutil.chown(path, user, user)


@contextlib.contextmanager
def private_server(settings: Settings, data_dir: Path, user: str | None,
                   timeout: float = 600.0) -> Iterator[PrivateServer]:
    """Start the cluster in ``data_dir`` privately (see the module doc); stop it on exit.

    Raises OperationFailed with the server log's last lines when it does not start.
    """
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="pg-private-", dir=settings.run_dir))
    os.chmod(folder, 0o700)
    _chown(folder, user)
    hba = folder / "pg_hba.conf"
    hba.write_text(PRIVATE_HBA)
    _chown(hba, user)
    log = folder / LOG_NAME
    pg_ctl = str(settings.pg_bin / "pg_ctl")
    options = (f"-c listen_addresses='' -c unix_socket_directories='{folder}' "
               f"-c hba_file='{hba}' -c port={settings.pg_port}")
    try:
        try:
            commands.run(_as_user(user, [pg_ctl, "-D", str(data_dir), "-l", str(log), "-w",
                                         "-t", str(int(timeout)), "-o", options, "start"]),
                         what="pg_ctl start (private)", timeout=timeout + 30)
        except AutographError as exc:
            raise OperationFailed(f"the restored cluster did not start: {exc.message}; "
                                  f"{_why_stopped(log)}") from None
        try:
            yield PrivateServer(settings, data_dir, folder)
        finally:
            with contextlib.suppress(AutographError):
                commands.run(_as_user(user, [pg_ctl, "-D", str(data_dir), "-m", "fast", "-w",
                                             "-t", "120", "stop"]),
                             what="pg_ctl stop (private)", timeout=150)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def segment_number(name: str) -> int:
    """The position of a 16 MiB WAL segment in the WAL stream (timeline left out)."""
    return int(name[8:16], 16) * 0x100 + int(name[16:24], 16)


def chain_gap(names: list[str]) -> tuple[str, str] | None:
    """The first hole in a run of WAL segment names, as (last segment before it, first
    after it); None when the run is unbroken. Timelines are ignored: a segment number present
    on any timeline counts (recovery follows the newest one)."""
    ordered = sorted({(segment_number(n), n) for n in names})
    for (before, name_before), (after, name_after) in itertools.pairwise(ordered):
        if after - before > 1:
            return name_before, name_after
    return None
