"""Loading a backup into a scratch database while its checksum is checked alongside.

A restore must never swap in a database loaded from damaged bytes, so the artifact's sha256 is
checked against the manifest. Reading and hashing the whole local file before ``pg_restore``
starts added that read to every restore's wall time; here the hash runs in a thread beside
``pg_restore`` and is waited for before the result is used. When the local copy turns out to be
damaged (or unreadable), the scratch database is dropped and the restore starts again from
:meth:`Catalog.fetch`, which takes the S3 copy and checks it before loading anything.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from autograph.dr.catalog import Catalog, Fetched
from autograph.dr.models import BackupEntry, ProgressFn
from autograph.dr.postgres.restore import load_dump, toc_entries
from autograph.dr.postgres.server import PgServer
from autograph.dr.postgres.verify import TocSummary, check_toc
from autograph.dr.storage import sha256_of
from autograph.errors import AutographError, NotFound


class _Checksum(threading.Thread):
    """Hashes a file in the background; ``matches()`` waits and compares."""

    def __init__(self, path: Path, expected: str) -> None:
        super().__init__(name="restore-sha256", daemon=True)
        self._path = path
        self._expected = expected
        self._digest = ""
        self.start()

    def run(self) -> None:
        try:
            with open(self._path, "rb") as stream:
                self._digest = sha256_of(stream)[0]
        except OSError as exc:
            self._digest = f"unreadable: {exc.strerror}"

    def matches(self) -> bool:
        self.join()
        return self._digest == self._expected


@dataclass(frozen=True)
class Loaded:
    """A backup loaded into a scratch database, its bytes checked."""

    fetched: Fetched
    toc: TocSummary
    counts: dict[str, int]


def find_backup(catalog: Catalog, name: str) -> BackupEntry:
    """The catalog entry of ``name``: the local manifest when there is one (no S3 round trips),
    else any tier's. Raises NotFound."""
    try:
        return catalog.get(name, tiers=("local",))
    except NotFound:
        return catalog.get(name)


def load_checked(catalog: Catalog, server: PgServer, name: str, scratch: str,
                 jobs: int | None, progress: ProgressFn) -> Loaded:
    """Load backup ``name`` into the new database ``scratch``; its checksum is verified before
    this returns (the local copy checked beside pg_restore, else the S3 copy before it).

    Raises NotFound, IntegrityError (no intact copy; TOC incomplete), OperationFailed
    (pg_restore), DependencyDown; ``scratch`` does not exist after a failure.
    """
    entry = find_backup(catalog, name)
    if "local" in entry.locations:
        path = catalog.local.path(entry.artifact)
        check = _Checksum(path, entry.sha256)
        try:
            loaded = _load(server, Fetched(path, entry, "local"), scratch, jobs, progress)
        except AutographError:
            if check.matches():
                raise
            loaded = None  # damaged bytes explain the failure: try the other copy below
        if check.matches():
            assert loaded is not None
            return loaded
        if loaded is not None:
            server.drop_database(scratch)
        progress("local copy damaged: fetching the S3 copy", None)
        fetched = catalog.fetch(name)  # hashes the local copy again: damage is recorded there
        return _load(server, fetched, scratch, jobs, progress)
    return _load(server, catalog.fetch(name), scratch, jobs, progress)


def _load(server: PgServer, fetched: Fetched, scratch: str, jobs: int | None,
          progress: ProgressFn) -> Loaded:
    progress("reading the archive's table of contents", None)
    toc = toc_entries(server, fetched.path)
    summary = check_toc(server, fetched.path, fetched.entry, toc)
    counts = load_dump(server, fetched.path, scratch, toc, jobs, progress)
    return Loaded(fetched, summary, counts)
