"""Loading a dump into a fresh database, with its tables' exact row counts.

``load_dump`` creates an empty database and runs ``pg_restore -j N --exit-on-error -v``; on any
failure the new database is dropped, so nothing is left behind. pg_restore's verbose output says
when each table's data is loaded; that table is counted then, on its own connection, while
pg_restore goes on building indexes and constraints — so the check costs little wall time.
``check_counts`` compares the counts with the manifest's. The swap into place is
:meth:`PgServer.swap`; the manager decides names and order.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from pathlib import Path
from typing import Any

import psycopg

from autograph import commands
from autograph.dr.models import ProgressFn, no_progress
from autograph.dr.postgres.server import PgServer, count_rows, prepare_counting, row_counts
from autograph.errors import AutographError, IntegrityError, OperationFailed

_VERBOSE = ("processing item", "finished item", "launching item", "creating ", "executing ",
            "processing data", "connecting ", "entering main", "finished main", "setting owner",
            "dropping ", "disabling ", "enabling ")


def default_jobs() -> int:
    """Parallel pg_restore jobs: the machine's cores."""
    return max(1, os.cpu_count() or 1)


def toc_entries(server: PgServer, path: Path) -> list[str]:
    """The archive's table of contents (``pg_restore --list``), comment lines dropped.

    Raises IntegrityError when pg_restore cannot read the archive.
    """
    try:
        listing = commands.run([server.program("pg_restore"), "--list", str(path)],
                               what="pg_restore --list", timeout=300)
    except OperationFailed as exc:
        raise IntegrityError(f"the dump is not readable: {exc.message}") from None
    return [line for line in listing.stdout.splitlines() if line and not line.startswith(";")]


def data_items(toc: list[str]) -> dict[str, tuple[str, str]]:
    """TOC id -> (schema, table) of each TABLE DATA entry whose names hold no spaces."""
    found: dict[str, tuple[str, str]] = {}
    for line in toc:
        ident, _, rest = line.partition(";")
        _, marker, names = rest.partition(" TABLE DATA ")
        parts = names.split()
        if marker and len(parts) == 3:
            found[ident.strip()] = (parts[0], parts[1])
    return found


def load_dump(server: PgServer, path: Path, dbname: str, toc: list[str], jobs: int | None = None,
              progress: ProgressFn = no_progress) -> dict[str, int]:
    """Create ``dbname``, restore the dump at ``path`` into it; return every table's row count.

    Raises OperationFailed (pg_restore's error in the message) or DependencyDown; the new
    database is dropped before raising.
    """
    server.create_database(dbname)
    counter = _Counter(server, dbname)
    try:
        args = [server.program("pg_restore"), "-j", str(jobs or default_jobs()),
                "--exit-on-error", "-v", *server.tool_args(dbname), str(path)]
        proc = commands.start(args, env=server.tool_env(), stdout=None)
        counter.start()
        watcher = _Watcher(proc.stderr, progress, len(toc), data_items(toc), counter.add)
        watcher.start()
        proc.wait()
        watcher.join()
        if proc.returncode != 0:
            raise OperationFailed(f"pg_restore failed (exit {proc.returncode}): "
                                  f"{commands.tail(watcher.errors())}")
        counts = counter.finish()
        with server.connect(dbname) as conn:
            counts.update(row_counts(conn, skip=set(counts)))
        return counts
    except BaseException:
        counter.stop()
        with contextlib.suppress(AutographError):
            server.drop_database(dbname)
        raise


def count_mismatches(expected: dict[str, int] | None, actual: dict[str, int]) -> list[str]:
    """Differences between the manifest's row counts and the loaded database's, as text."""
    if expected is None:
        return []
    problems = []
    for table in sorted(set(expected) | set(actual)):
        want, got = expected.get(table), actual.get(table)
        if want != got:
            problems.append(f"{table}: expected {want if want is not None else 'no table'}, "
                            f"found {got if got is not None else 'no table'}")
    return problems


def check_counts(expected: dict[str, int] | None, actual: dict[str, int]) -> int:
    """Compare loaded row counts with the manifest's; return the tables checked.

    Raises IntegrityError listing the first differences.
    """
    problems = count_mismatches(expected, actual)
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)"
                                           if len(problems) > 5 else "")
        raise IntegrityError(f"row counts differ from the manifest: {shown}")
    return len(actual)


class _Counter(threading.Thread):
    """Counts tables handed to ``add`` on its own connection, one after another."""

    def __init__(self, server: PgServer, dbname: str) -> None:
        super().__init__(name="restore-counts", daemon=True)
        self._server = server
        self._dbname = dbname
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._counts: dict[str, int] = {}
        self._error: BaseException | None = None
        self._conn: Any = None

    def add(self, table: tuple[str, str]) -> None:
        self._queue.put(table)

    def run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                if self._conn is None:
                    self._conn = self._server.connect(self._dbname)
                    prepare_counting(self._conn, parallel=False)
                    # Never hold up pg_restore: a table it is altering is counted at the end.
                    self._conn.execute("SET lock_timeout = '100ms'")
                with contextlib.suppress(psycopg.errors.LockNotAvailable):
                    self._counts[f"{item[0]}.{item[1]}"] = count_rows(self._conn, *item)
        except BaseException as exc:
            self._error = exc
        finally:
            if self._conn is not None:
                self._conn.close()

    def finish(self) -> dict[str, int]:
        """Wait for the queued counts; those that failed are left for the caller to redo."""
        self._queue.put(None)
        self.join()
        return dict(self._counts) if self._error is None else {}

    def stop(self) -> None:
        if self.is_alive():
            self._queue.put(None)
            self.join(timeout=30)


class _Watcher(threading.Thread):
    """Reads pg_restore's verbose stderr: progress and loaded tables; other lines kept."""

    def __init__(self, stream: Any, progress: ProgressFn, total: int,
                 items: dict[str, tuple[str, str]],
                 loaded: Any) -> None:
        super().__init__(name="pg_restore-stderr", daemon=True)
        self._stream = stream
        self._progress = progress
        self._total = max(1, total)
        self._items = items
        self._loaded = loaded
        self._other: list[str] = []

    def run(self) -> None:
        done = 0
        for raw in self._stream:
            line = raw.decode(errors="replace").rstrip().removeprefix("pg_restore: ")
            if line.startswith(("processing item", "finished item")):
                done += 1
                self._progress("restoring", min(1.0, done / self._total))
                words = line.split()
                if words[0] == "finished" and len(words) > 2 and words[2] in self._items:
                    self._loaded(self._items[words[2]])
            elif not line.startswith(_VERBOSE):
                self._other.append(line)

    def errors(self) -> str:
        return "\n".join(self._other[-5:])
