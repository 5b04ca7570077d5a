"""Verifying a database dump against its manifest.

- quick (after every backup, and ``verify``): the sha256 of the file, then ``pg_restore --list``
  reads the archive's table of contents, which must hold a data entry for every table the
  manifest counted;
- deep (``verify --deep``): also restores into a scratch database, compares every table's
  exact row count with the manifest, and drops the scratch database whatever happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autograph.clock import Clock, utc_now
from autograph.dr.models import Manifest, ProgressFn, Verification, no_progress
from autograph.dr.postgres.restore import check_counts, load_dump, toc_entries
from autograph.dr.postgres.server import PgServer
from autograph.dr.storage import sha256_of
from autograph.errors import AutographError, IntegrityError

QUICK = "sha256+pg_restore --list"
DEEP = "sha256+pg_restore --list+restore to scratch+row counts"


def check_checksum(path: Path, manifest: Manifest) -> str:
    """Raise IntegrityError unless the file's sha256 and size match the manifest."""
    with open(path, "rb") as stream:
        digest, size = sha256_of(stream)
    if size != manifest.size_bytes:
        raise IntegrityError(f"size {size} != manifest {manifest.size_bytes}")
    if digest != manifest.sha256:
        raise IntegrityError(f"sha256 {digest[:16]}… != manifest {manifest.sha256[:16]}…")
    return "ok"


@dataclass(frozen=True)
class TocSummary:
    """What ``pg_restore --list`` found: TOC entries, tables with data."""

    entries: int
    tables: int

    def __str__(self) -> str:
        return f"{self.entries} entries, {self.tables} tables with data"


def check_toc(server: PgServer, path: Path, manifest: Manifest,
              entries: list[str] | None = None) -> TocSummary:
    """Raise IntegrityError unless pg_restore reads the TOC and it covers every counted table.

    ``entries``: the TOC when already read (``toc_entries``).
    """
    entries = toc_entries(server, path) if entries is None else entries
    data = {" ".join(line.split()) for line in entries if " TABLE DATA " in line}
    missing = []
    for table in manifest.row_counts or {}:
        schema, _, name = table.partition(".")
        if not any(f" TABLE DATA {schema} {name} " in entry for entry in data):
            missing.append(table)
    if missing:
        raise IntegrityError(f"no data in the dump for {', '.join(missing[:5])}")
    return TocSummary(len(entries), len(data))


def verify_dump(server: PgServer, path: Path, manifest: Manifest, *, deep: bool = False,
                scratch: str | None = None, clock: Clock = utc_now,
                progress: ProgressFn = no_progress, checksum: str | None = None) -> Verification:
    """Run the checks on a local dump; return the Verification (never raises for a failed
    check: the failure is in the result). ``scratch`` names the database a deep check uses;
    ``checksum``: the sha256 step's outcome when the caller already hashed the file as read
    back from disk (it is not read again).

    Raises DependencyDown when a deep check needs PostgreSQL and it is down.
    """
    steps: list[tuple[str, Callable[[], str]]] = [
        ("sha256", lambda: checksum or check_checksum(path, manifest)),
        ("pg_restore --list", lambda: str(check_toc(server, path, manifest))),
    ]
    if deep:
        assert scratch is not None
        steps.append(("restore to scratch", lambda: _deep(server, path, manifest, scratch,
                                                          progress)))
    checks: dict[str, str] = {}
    for name, check in steps:
        progress(f"verifying: {name}", None)
        try:
            checks[name] = check()
        except IntegrityError as exc:
            checks[name] = f"failed: {exc.message}"
            return Verification(status="failed", at=clock(), method=DEEP if deep else QUICK,
                                detail=f"{name}: {exc.message}", checks=checks)
        except AutographError as exc:
            if deep and name == "restore to scratch" and exc.http_status == 503:
                raise
            checks[name] = f"failed: {exc.message}"
            return Verification(status="failed", at=clock(), method=DEEP if deep else QUICK,
                                detail=f"{name}: {exc.message}", checks=checks)
    return Verification(status="passed", at=clock(), method=DEEP if deep else QUICK,
                        checks=checks)


def _deep(server: PgServer, path: Path, manifest: Manifest, scratch: str,
          progress: ProgressFn) -> str:
    counts = load_dump(server, path, scratch, toc_entries(server, path), progress=progress)
    try:
        tables = check_counts(manifest.row_counts, counts)
    finally:
        server.drop_database(scratch)
    return f"{tables} tables restored, row counts match"
