"""Loading a dump into a fresh database, and checking it against the manifest.

``load_dump`` creates an empty database and runs ``pg_restore -j N --exit-on-error``; on any
failure the new database is dropped, so nothing is left behind. ``count_mismatches`` compares
the loaded tables' exact row counts with the manifest's. The swap into place is
:meth:`PgServer.swap`; the manager decides names and order.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from autograph import commands
from autograph.dr.models import ProgressFn, no_progress
from autograph.dr.postgres.server import PgServer, row_counts
from autograph.errors import AutographError, IntegrityError, OperationFailed


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


def load_dump(server: PgServer, path: Path, dbname: str, jobs: int | None = None,
              progress: ProgressFn = no_progress, total_items: int | None = None) -> None:
    """Create ``dbname`` and restore the dump at ``path`` into it.

    Raises OperationFailed (pg_restore's error in the message) or DependencyDown; the new
    database is dropped before raising.
    """
    server.create_database(dbname)
    try:
        args = [server.program("pg_restore"), "-j", str(jobs or default_jobs()),
                "--exit-on-error", "-v", *server.tool_args(dbname), str(path)]
        proc = commands.start(args, env=server.tool_env(), stdout=None)
        watcher = _Watcher(proc.stderr, progress, total_items)
        watcher.start()
        proc.wait()
        watcher.join()
        if proc.returncode != 0:
            raise OperationFailed(f"pg_restore failed (exit {proc.returncode}): "
                                  f"{commands.tail(watcher.errors())}")
    except BaseException:
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


def loaded_counts(server: PgServer, dbname: str) -> dict[str, int]:
    """Exact row counts of every table in ``dbname``."""
    with server.connect(dbname) as conn:
        return row_counts(conn)


def check_counts(server: PgServer, dbname: str, expected: dict[str, int] | None) -> int:
    """Compare ``dbname``'s row counts with ``expected``; return the tables checked.

    Raises IntegrityError listing the first differences.
    """
    actual = loaded_counts(server, dbname)
    problems = count_mismatches(expected, actual)
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)"
                                           if len(problems) > 5 else "")
        raise IntegrityError(f"row counts differ from the manifest: {shown}")
    return len(actual)


_VERBOSE = ("processing item", "finished item", "launching item", "creating ", "executing ",
            "processing data", "connecting ", "entering main", "finished main", "setting owner",
            "dropping ", "disabling ", "enabling ")


class _Watcher(threading.Thread):
    """Reads pg_restore's verbose stderr: progress from items done, everything else kept."""

    def __init__(self, stream: Any, progress: ProgressFn, total: int | None) -> None:
        super().__init__(name="pg_restore-stderr", daemon=True)
        self._stream = stream
        self._progress = progress
        self._total = total
        self._other: list[str] = []

    def run(self) -> None:
        done = 0
        for raw in self._stream:
            line = raw.decode(errors="replace").rstrip().removeprefix("pg_restore: ")
            if line.startswith(("processing item", "finished item")):
                done += 1
                fraction = min(1.0, done / self._total) if self._total else None
                self._progress("restoring", fraction)
            elif not line.startswith(_VERBOSE):
                self._other.append(line)

    def errors(self) -> str:
        return "\n".join(self._other[-5:])
