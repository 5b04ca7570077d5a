"""``DatabaseBackupManager``: the plan's PostgreSQL backups (SPEC §5, §6).

create · verify [deep] · restore (into a new database, checked, migrated, then swapped; the
previous database kept for rollback) · rollback · list · delete · sync. One operation of the
database kind at a time (:mod:`autograph.dr.ops.locks`); outcomes go to
:mod:`autograph.dr.ops.hooks`.
"""

from __future__ import annotations

import builtins
import logging
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import JsonValue

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.catalog import ALL_TIERS, Catalog, open_catalog
from autograph.dr.catalog.kind_manager import KindManager
from autograph.dr.models import (
    BackupEntry,
    BackupList,
    Kind,
    Manifest,
    ProgressFn,
    RestoreResult,
    Verification,
    no_progress,
    validate_name,
)
from autograph.dr.ops import hooks, locks
from autograph.dr.ops.steps import StepTimer
from autograph.dr.postgres.checked_load import find_backup, load_checked
from autograph.dr.postgres.dump import dump_database
from autograph.dr.postgres.remote_copy import RemoteCopy
from autograph.dr.postgres.restore import check_counts
from autograph.dr.postgres.server import PgServer, derived_name
from autograph.dr.postgres.verify import verify_dump
from autograph.dr.storage import sha256_of
from autograph.errors import AutographError, NotFound
from autograph.schema.runner import migrate
from autograph.secrets import Credentials

KIND: Kind = "database"
log = logging.getLogger("autograph.dr.postgres")
FORMAT = "pg_dump -Fc"
READ_BACK = "ok (the file read back from disk by its S3 copy matched)"


class DatabaseBackupManager(KindManager):
    """Backups of the application database over the two-tier catalog."""

    def __init__(self, settings: Settings, creds: Credentials, *, clock: Clock = utc_now,
                 catalog: Catalog | None = None) -> None:
        self.kind = KIND
        self.settings = settings
        self.server = PgServer.from_settings(settings, creds)
        self.catalog = catalog or open_catalog(settings, creds, KIND)
        self.clock = clock

    # Reading ---------------------------------------------------------------------------------

    def list(self) -> BackupList:
        """Every database backup, both tiers merged, newest first (no database needed)."""
        return self.catalog.list()

    def get(self, name: str) -> BackupEntry:
        """One backup. Raises InvalidInput, NotFound."""
        return self.catalog.get(name)

    def new_name(self, scheduled: bool = False,
                 tiers: tuple[str, ...] = ALL_TIERS) -> str:
        """``scheduled_backup_YYYYMMDD_HHMMSS`` or ``manual_backup_…``, suffixed if taken (in
        ``tiers``)."""
        base = f"{'scheduled' if scheduled else 'manual'}_backup_{self.clock():%Y%m%d_%H%M%S}"
        taken = self.catalog.names(tiers)
        name, n = base, 1
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        return name

    # Create ----------------------------------------------------------------------------------

    def create(self, name: str | None = None, *, scheduled: bool = False,
               tags: tuple[str, ...] = (), verify: bool = True, upload: bool = True,
               progress: ProgressFn = no_progress,
               lock: locks.OperationLock | None = None) -> BackupEntry:
        """Dump the live database, verify it, copy it to S3, commit its manifest.

        S3 trouble does not fail the backup (the manifest records the missing copy).
        Raises InvalidInput / Conflict (name, another operation), DependencyDown (PostgreSQL
        down), OperationFailed (pg_dump failed), IntegrityError (verification failed); on any
        error nothing is left in the catalog and ``backup_failed`` is emitted.
        """
        if name is not None:
            validate_name(name)
        with self._locked("backup", name or "", lock):
            earlier = self.catalog.list(tiers=("local",))  # for the size check: no S3 reads
            # The S3 tier is checked beside the dump (RemoteCopy): S3 never delays pg_dump.
            name = (self.catalog.validate_new(name, tiers=("local",)) if name
                    else self.new_name(scheduled, tiers=("local",)))
            with hooks.reporting("backup_failed", KIND, name, what=f"backup {name}"):
                entry = self._create(name, scheduled, tags, verify, upload, progress)
        hooks.emit(hooks.BackupEvent("backup_succeeded", KIND, name, f"{entry.size_bytes} bytes",
                                     data={"size_bytes": entry.size_bytes,
                                           "locations": list(entry.locations)}))
        self._check_size(entry, earlier)
        return entry

    def _create(self, name: str, scheduled: bool, tags: tuple[str, ...], verify: bool,
                upload: bool, progress: ProgressFn) -> BackupEntry:
        self.catalog.clean_incomplete(tiers=("local",))  # the other tiers': in RemoteCopy
        started = self.clock()
        artifact = f"{name}.dump"
        mirror: RemoteCopy | None = None
        try:
            progress("dumping", None)
            with self.catalog.stage(artifact) as sink:
                mirror = RemoteCopy(self.catalog, name, sink) if upload else None
                info = dump_database(self.server, self.server.live_database, sink, progress)
                if mirror is not None:
                    mirror.attached()  # raises Conflict when the name is taken in S3
            manifest = Manifest(
                name=name, kind=KIND, source=self.server.live_database, format=FORMAT,
                artifact=artifact, created_at=started, started_at=started,
                finished_at=self.clock(), size_bytes=sink.size, sha256=sink.hexdigest(),
                server_version=info.server_version, row_counts=info.row_counts,
                tags=sorted({"scheduled" if scheduled else "manual", *tags}),
                extra={"pg_dump_version": info.pg_dump_version,
                       "database_size_bytes": info.database_size_bytes},
            )
            progress("uploading to S3", None)
            problem = mirror.finish(manifest.sha256) if mirror else "upload disabled"
            # The S3 copy read the file back from disk and hashed it: when that hash matched,
            # verification need not read the whole file a third time.
            manifest = self._verify(manifest, verify, progress, read_back=problem is None)
            manifest = manifest.model_copy(update={"s3_copy": "missing" if problem else
                                                   "uploaded", "s3_error": problem})
            progress("committing", None)
            return self.catalog.publish(manifest)
        except BaseException:
            if mirror is not None:
                mirror.cancel()
            if mirror is None or not mirror.conflicted:  # else the S3 files are another's
                self.catalog.discard(artifact)
            raise

    def _verify(self, manifest: Manifest, verify: bool, progress: ProgressFn,
                read_back: bool = False) -> Manifest:
        """Verify the local copy (checksum, pg_restore --list); IntegrityError if it fails.

        ``read_back``: the file was already read back and matched the manifest's sha256 (by
        the S3 copy), so the checksum step records that instead of reading it again."""
        if not verify:
            return manifest
        progress("verifying", None)
        verification = verify_dump(self.server, self.catalog.local.path(manifest.artifact),
                                   manifest, clock=self.clock,
                                   checksum=READ_BACK if read_back else None)
        if verification.status == "failed":
            raise hooks.verification_failed(KIND, manifest.name, verification.detail)
        return manifest.model_copy(update={"verification": verification})

    def _check_size(self, entry: BackupEntry, earlier: BackupList) -> None:
        """Emit ``backup_small`` when this backup is below the configured fraction of the
        median of the previous (up to 7) backups."""
        previous = [b.size_bytes for b in earlier.backups if b.name != entry.name][:7]
        if not previous:
            return
        median = statistics.median(previous)
        if entry.size_bytes < self.settings.small_backup_fraction * median:
            hooks.emit(hooks.BackupEvent(
                "backup_small", KIND, entry.name,
                f"{entry.size_bytes} bytes is under {self.settings.small_backup_fraction:.0%} "
                f"of the median of the last {len(previous)} ({median:.0f} bytes)",
                data={"size_bytes": entry.size_bytes, "median_bytes": median}))

    # Verify ----------------------------------------------------------------------------------

    def verify(self, name: str, *, deep: bool = False, progress: ProgressFn = no_progress,
               lock: locks.OperationLock | None = None) -> BackupEntry:
        """Check every copy of ``name`` (sha256, pg_restore --list; ``deep``: restore into a
        scratch database and compare row counts) and record the result in its manifest.

        Raises InvalidInput, NotFound, Conflict, IntegrityError when a check failed (the
        failure is recorded first and ``verification_failed`` emitted).
        """
        validate_name(name)
        with self._locked("verify", name, lock), \
                locks.mark_busy(self.settings.backups_dir, KIND, name, "verify"):
            entry = self.catalog.get(name)
            manifest = entry.manifest()
            if deep:
                self._drop_leftovers(self.server.live_database)
            scratch = derived_name(self.server.live_database, "verify",
                                   f"{self.clock():%Y%m%d%H%M%S}")
            with self._local_copy(entry) as path:
                result = verify_dump(self.server, path, manifest, deep=deep, scratch=scratch,
                                     clock=self.clock, progress=progress)
            if "local" in entry.locations and "s3" in entry.locations:
                result = self._check_s3_copy(manifest, result, progress)
            entry = self.catalog.update(name, verification=result)
        if result.status == "failed":
            raise hooks.verification_failed(KIND, name, result.detail)
        hooks.emit(hooks.BackupEvent("verification_passed", KIND, name, result.method or ""))
        return entry

    @contextmanager
    def _local_copy(self, entry: BackupEntry) -> Iterator[Path]:
        """The local artifact, or the S3 copy downloaded to a temporary file (removed after)."""
        if "local" in entry.locations:
            yield self.catalog.local.path(entry.artifact)
            return
        assert self.catalog.remote is not None
        self.settings.backups_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.settings.backups_dir, prefix=".verify-",
                                         suffix=".dump") as temp:
            with self.catalog.remote.open(entry.artifact) as stream:
                while chunk := stream.read(1 << 20):
                    temp.write(chunk)
            temp.flush()
            yield Path(temp.name)

    def _check_s3_copy(self, manifest: Manifest, result: Verification,
                       progress: ProgressFn) -> Verification:
        assert self.catalog.remote is not None
        progress("verifying the S3 copy", None)
        try:
            with self.catalog.remote.open(manifest.artifact) as stream:
                digest, _size = sha256_of(stream)
        except AutographError as exc:
            outcome = f"not checked: {exc.message}"
        else:
            outcome = "ok" if digest == manifest.sha256 else f"failed: sha256 {digest[:16]}…"
        checks = {**result.checks, "s3 copy sha256": outcome}
        if outcome.startswith("failed") and result.status == "passed":
            return result.model_copy(update={"status": "failed", "checks": checks,
                                             "detail": "the S3 copy does not match"})
        return result.model_copy(update={"checks": checks})

    # Restore ---------------------------------------------------------------------------------

    def restore(self, name: str, *, target: str | None = None, jobs: int | None = None,
                progress: ProgressFn = no_progress,
                lock: locks.OperationLock | None = None) -> RestoreResult:
        """Restore ``name`` into a new database, check it, then swap it in for ``target``
        (default: the live database), keeping the previous one as ``<db>__pre_restore_<ts>``.

        The live database is untouched by every failure. Raises InvalidInput, NotFound,
        Conflict, IntegrityError (no intact copy, row counts differ), OperationFailed
        (pg_restore failed), DependencyDown.
        """
        validate_name(name)
        find_backup(self.catalog, name)  # an unknown name is the answer, whatever else is down
        target = validate_name(target, "database name") if target else self.server.live_database
        started = time.monotonic()
        steps = StepTimer()
        with hooks.reporting("restore_failed", KIND, name, what=f"restore of {name}"), \
                self._locked("restore", name, lock), \
                locks.mark_busy(self.settings.backups_dir, KIND, name, "restore"):
            self._drop_leftovers(target)
            stamp = f"{self.clock():%Y%m%d%H%M%S}"
            scratch = derived_name(target, "restoring", stamp)
            loaded = load_checked(self.catalog, self.server, name, scratch, jobs, progress)
            fetched = loaded.fetched
            steps.done("pg_restore", f"{fetched.location} copy (sha256 checked alongside; "
                       f"{loaded.toc}) into {scratch}")
            steps.start()
            progress("checking row counts", None)
            with self._dropped_on_failure(scratch):
                tables = check_counts(fetched.entry.row_counts, loaded.counts)
            steps.done("row counts", f"{tables} tables match the manifest")
            steps.start()
            progress("migrating the schema", None)
            migrated = self._migrate(scratch)
            steps.done("migrate", migrated)
            steps.start()
            progress("swapping databases", None)
            previous = None
            if self.server.database_exists(target):
                previous = self.server.unused_name(target, "pre_restore", stamp)
            with self._dropped_on_failure(scratch):
                self.server.swap(target, scratch, previous)
            steps.done("swap", f"{target} replaced" + (f"; previous kept as {previous}"
                                                       if previous else " (did not exist)"))
            dropped = self._drop_old_previous(target)
        extra: dict[str, JsonValue] = {"notes": list(fetched.notes),
                                       "dropped_previous": list(dropped)}
        result = RestoreResult(backup_name=name, kind=KIND,
                               duration_seconds=round(time.monotonic() - started, 3),
                               source_location=fetched.location, target=target,
                               previous=previous, steps=steps.steps, extra=extra)
        hooks.emit(hooks.BackupEvent("restore_succeeded", KIND, name,
                                     f"restored into {target}",
                                     data={"duration_seconds": result.duration_seconds}))
        return result

    def _migrate(self, scratch: str) -> str:
        """Bring the restored database's schema up to date before it goes live (a dump taken
        before a migration lacks its tables); dropped on failure. Returns what was done."""
        with self._dropped_on_failure(scratch):
            return migrate(self.server.conninfo(scratch)).summary()

    @contextmanager
    def _dropped_on_failure(self, scratch: str) -> Iterator[None]:
        """Drop the scratch database when the block fails (the live one is untouched)."""
        try:
            yield
        except BaseException:
            self.server.drop_database(scratch)
            raise

    def _drop_leftovers(self, target: str) -> None:
        """Drop scratch databases an interrupted restore or deep verify left behind (the kind
        lock is held, so none is in use), and re-open ``target`` and its kept predecessors if
        a swap killed halfway left them refusing connections."""
        for label in ("restoring", "verify"):
            for leftover in self.server.databases(derived_name(target, label, "")):
                self.server.drop_database(leftover)
        for name in self.server.allow_connections(target):
            log.warning("database %s refused connections (a swap was interrupted); "
                        "re-opened", name)

    def _drop_old_previous(self, target: str) -> builtins.list[str]:
        """Drop ``<target>__pre_restore_*`` databases beyond the newest
        ``pre_restore_keep`` (each is a full copy of the database)."""
        kept = sorted(self.server.databases(derived_name(target, "pre_restore", "")),
                      reverse=True)
        dropped = kept[self.settings.pre_restore_keep:]
        for name in dropped:
            self.server.drop_database(name)
        return dropped

    def previous_databases(self) -> builtins.list[str]:
        """Databases kept by earlier restores (``<db>__pre_restore_<ts>``), newest first."""
        prefix = derived_name(self.server.live_database, "pre_restore", "")
        return sorted(self.server.databases(prefix), reverse=True)

    def rollback(self, previous: str | None = None,
                 lock: locks.OperationLock | None = None) -> dict[str, str]:
        """Swap a kept pre-restore database (default: the newest) back into place; the
        database it replaces is kept as ``<db>__rolled_back_<ts>``. Raises NotFound."""
        kept = self.previous_databases()
        chosen = previous or (kept[0] if kept else None)
        if chosen is None or chosen not in kept:
            raise NotFound("no pre-restore database to roll back to"
                           + (f" named {previous}" if previous else ""))
        live = self.server.live_database
        with self._locked("rollback", chosen, lock):
            self.server.allow_connections(chosen)  # a swap killed halfway left it refusing
            migrate(self.server.conninfo(chosen))  # kept before an upgrade: current first
            displaced = self.server.unused_name(live, "rolled_back",
                                                f"{self.clock():%Y%m%d%H%M%S}")
            self.server.swap(live, chosen, displaced)
        return {"database": live, "restored_from": chosen, "displaced": displaced}
