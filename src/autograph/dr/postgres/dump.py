"""``pg_dump -Fc`` streamed into a sink, with exact row counts from the same snapshot.

A REPEATABLE READ transaction exports its snapshot; ``pg_dump --snapshot`` dumps exactly that
state while the same transaction counts every table's rows, in parallel. So the manifest's row
counts are those of the dump even while the application keeps writing. The dump's bytes go
from the pipe straight into the sink (which hashes them on the way): there is no second read.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

from psycopg import IsolationLevel

from autograph import commands
from autograph.dr.models import ProgressFn, no_progress
from autograph.dr.postgres.server import PgServer, row_counts
from autograph.dr.storage import Sink
from autograph.errors import AutographError, OperationFailed

PIPE_CHUNK = 1 << 20


@dataclass
class DumpInfo:
    """What a dump recorded besides its bytes."""

    row_counts: dict[str, int]
    server_version: str
    database_size_bytes: int
    pg_dump_version: str
    tables: int = field(init=False)

    def __post_init__(self) -> None:
        self.tables = len(self.row_counts)


def _version_of(proc: subprocess.Popen[bytes]) -> str:
    """What a started ``pg_dump --version`` printed (e.g. ``pg_dump (PostgreSQL) 15.8``)."""
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise OperationFailed("pg_dump --version: timed out") from None
    if proc.returncode != 0:
        raise OperationFailed(f"pg_dump --version failed (exit {proc.returncode}): "
                              f"{commands.tail(err.decode(errors='replace'))}")
    return out.decode(errors="replace").strip()


def dump_database(server: PgServer, dbname: str, sink: Sink,
                  progress: ProgressFn = no_progress) -> DumpInfo:
    """Dump ``dbname`` in custom format into ``sink``; return row counts and versions.

    Raises DependencyDown if PostgreSQL is unreachable, OperationFailed if pg_dump fails or
    is killed (its stderr in the message). The caller discards the sink on error.
    """
    # Asked while the connection and snapshot are set up, not before: off the critical path.
    version_proc = commands.start([server.program("pg_dump"), "--version"])
    conn: Any = None
    try:
        conn = server.connect(dbname, autocommit=False)
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        server_version = conn.execute("SHOW server_version").fetchone()[0]
        size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        counter = _Counter(conn)
        args = [server.program("pg_dump"), "-Fc", f"--snapshot={snapshot}",
                *server.tool_args(dbname)]
        proc = commands.start(args, env=server.tool_env())
        counter.start()
        try:
            # Reaped before the long part: it ran during the connection and snapshot set-up.
            version = _version_of(version_proc)
            _pump(proc.stdout, sink, progress)
        except BaseException:
            proc.kill()
            proc.wait()
            counter.join()
            raise
        try:
            commands.finish(proc, what="pg_dump")
        finally:
            counter.join()
        counts = counter.result()
    finally:
        _reap(version_proc)
        if conn is not None:
            conn.close()
    return DumpInfo(counts, str(server_version), size, version)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Kill (if still running) and wait for a helper process; close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _pump(stream: Any, sink: Sink, progress: ProgressFn) -> None:
    reported = 0
    while chunk := stream.read1(PIPE_CHUNK):
        sink.write(chunk)
        if sink.size - reported >= 8 * PIPE_CHUNK:
            reported = sink.size
            progress(f"dumping: {sink.size / 1e6:.0f} MB written", None)


class _Counter(threading.Thread):
    """Counts rows in the exporting transaction while pg_dump runs."""

    def __init__(self, conn: Any) -> None:
        super().__init__(name="row-counts", daemon=True)
        self._conn = conn
        self._counts: dict[str, int] | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._counts = row_counts(self._conn, parallel=False)  # beside pg_dump
        except BaseException as exc:
            self._error = exc

    def result(self) -> dict[str, int]:
        if self._error is not None:
            if isinstance(self._error, AutographError):
                raise self._error
            raise OperationFailed(f"counting rows failed: {self._error}")
        assert self._counts is not None
        return self._counts
