"""``MinIOBucketBackupManager``: the plan's bucket backups (SPEC §4-6).

create (one bucket, or every application bucket) · list · verify · restore (into any bucket,
``overwrite`` or not) · delete · sync · bucket listing with counts and sizes. Archives are
``NAME.tar.gz`` in the shared catalog (``BACKUPS/minio/`` and the ``minio-backups`` bucket).
One bucket-kind operation at a time (:mod:`autograph.dr.ops.locks`); outcomes go to
:mod:`autograph.dr.ops.hooks`. The S3 work goes through the lean client (:mod:`.s3io`).
"""

from __future__ import annotations

import re
import time

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.buckets.archive_read import verify_archive
from autograph.dr.buckets.backup import CountsFn, Upload, build_archive, no_counts, throttled
from autograph.dr.buckets.models import (
    KIND,
    VERIFY_METHOD,
    BucketList,
    BucketRestoreResult,
    BucketUsage,
    bucket_manifest,
    validate_bucket,
)
from autograph.dr.buckets.restore import restore_archive
from autograph.dr.catalog import Catalog, open_catalog
from autograph.dr.catalog.kind_manager import KindManager
from autograph.dr.models import (
    BackupEntry,
    BackupList,
    ProgressFn,
    Verification,
    manifest_key,
    no_progress,
    validate_name,
)
from autograph.dr.ops import hooks, locks
from autograph.dr.ops.steps import StepTimer
from autograph.dr.storage.s3 import S3Store
from autograph.errors import AutographError, IntegrityError, InvalidInput, NotFound
from autograph.s3.bulk import S3Client
from autograph.s3.sigv4 import S3Endpoint
from autograph.secrets import Credentials

Entries = list[BackupEntry]
Tiers = list[str]
Tags = list[str]


class MinIOBucketBackupManager(KindManager):
    """Backups of the application's buckets over the two-tier catalog."""

    def __init__(self, settings: Settings, creds: Credentials, *, clock: Clock = utc_now,
                 catalog: Catalog | None = None, source: S3Client | None = None,
                 workers: int = 16) -> None:
        self.kind = KIND
        self.settings = settings
        self.catalog = catalog or open_catalog(settings, creds, KIND)
        self.source = source or S3Client(S3Endpoint.application(settings, creds),
                                         timeout=30.0, retries=2)
        self.backups_s3 = S3Client(S3Endpoint.backups(settings, creds), timeout=30.0, retries=2)
        self.clock = clock
        self.workers = workers

    # Coordination ------------------------------------------------------------------------------

    def backup_buckets(self) -> set[str]:
        """Buckets that hold backups: never a restore target, never backed up as data."""
        return {self.settings.backup_bucket_objects, self.settings.backup_bucket_database}

    def check_target(self, bucket: str) -> str:
        """A valid restore target. Raises InvalidInput for a bad name or a backup bucket."""
        validate_bucket(bucket, "target bucket")
        if bucket in self.backup_buckets():
            raise InvalidInput(f"target bucket {bucket} holds backups; restore elsewhere")
        return bucket

    def check_source(self, bucket: str) -> None:
        """A bucket that may be backed up. Raises InvalidInput for a bad name or a backup
        bucket (the routes call it before answering 202 for a job)."""
        validate_bucket(bucket)
        if bucket in self.backup_buckets():
            raise InvalidInput(f"bucket {bucket} holds backups and is not backed up as data")

    # Reading ---------------------------------------------------------------------------------

    def list(self, bucket: str | None = None) -> BackupList:
        """Every bucket backup (of ``bucket``), both tiers merged, newest first."""
        listing = self.catalog.list()
        if bucket is not None:
            validate_bucket(bucket)
            listing.backups = [b for b in listing.backups if b.source == bucket]
        return listing

    def get(self, name: str) -> BackupEntry:
        """One backup. Raises InvalidInput, NotFound, IntegrityError when its manifest exists
        but no tier holds an artifact of the recorded size (truncated or missing)."""
        try:
            return self.catalog.get(name)
        except NotFound:
            marker = f": {manifest_key(name)}: "
            damage = [p for p in self.catalog.list().problems if marker in p]
            if damage:
                raise IntegrityError(f"backup {name} is damaged: {'; '.join(damage)}") from None
            raise

    def buckets(self) -> BucketList:
        """Every bucket of the application S3 server (backup buckets aside) with its object
        count, total size and newest backup. Raises DependencyDown if S3 is unreachable."""
        newest: dict[str, str] = {}
        try:
            for entry in reversed(self.catalog.list().backups):
                newest[entry.source] = entry.name
        except AutographError:
            pass  # usage is still worth showing without the catalog
        found = []
        for name in sorted(set(self.source.list_buckets()) - self.backup_buckets()):
            count = size = 0
            for listed in self.source.list_objects(name):
                count, size = count + 1, size + listed.size
            found.append(BucketUsage(name=name, object_count=count, size_bytes=size,
                                     application=name in self.settings.app_buckets,
                                     last_backup=newest.get(name)))
        return BucketList(buckets=found)

    def new_name(self, bucket: str, scheduled: bool = False) -> str:
        """``scheduled_<bucket>_YYYYMMDD_HHMMSS`` or ``manual_<bucket>_…``, suffixed if taken."""
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", bucket)
        base = f"{'scheduled' if scheduled else 'manual'}_{stem}_{self.clock():%Y%m%d_%H%M%S}"
        taken = {entry.name for entry in self.catalog.list().backups}
        name, n = base, 1
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        return name

    # Create ----------------------------------------------------------------------------------

    def create(self, bucket: str, name: str | None = None, *, scheduled: bool = False,
               tags: tuple[str, ...] = (), verify: bool = True, upload: bool = True,
               progress: ProgressFn = no_progress, counts: CountsFn = no_counts,
               lock: locks.OperationLock | None = None) -> BackupEntry:
        """Archive ``bucket`` (the objects listed at the start), verify the archive, copy it
        to S3, commit its manifest. Objects deleted meanwhile are reported in the manifest.

        S3-tier trouble does not fail the backup (the manifest records the missing copy).
        Raises InvalidInput (bucket or name), NotFound (no such bucket), Conflict (name taken,
        another operation running), DependencyDown (S3 unreachable), IntegrityError
        (verification failed), OperationFailed; then nothing is left in the catalog and
        ``backup_failed`` is emitted.
        """
        self.check_source(bucket)
        if name is not None:
            validate_name(name)
        with self._locked("backup", bucket, lock):
            return self._create_reported(bucket, name, scheduled, tags, verify, upload,
                                         progress, counts)

    def create_all(self, *, scheduled: bool = False, tags: tuple[str, ...] = (),
                   verify: bool = True, upload: bool = True, progress: ProgressFn = no_progress,
                   counts: CountsFn = no_counts,
                   lock: locks.OperationLock | None = None) -> Entries:
        """Back up every application bucket (``diagrams``, ``exports``, ``uploads``) in turn,
        under one lock. Raises the first failure (the backups made before it stay committed).
        """
        for bucket in self.settings.app_buckets:
            self.check_source(bucket)
        with self._locked("backup", "all buckets", lock):
            return [self._create_reported(bucket, None, scheduled, tags, verify, upload,
                                          progress, counts)
                    for bucket in self.settings.app_buckets]

    def _create_reported(self, bucket: str, name: str | None, scheduled: bool,
                         tags: tuple[str, ...], verify: bool, upload: bool,
                         progress: ProgressFn, counts: CountsFn) -> BackupEntry:
        with hooks.reporting("backup_failed", KIND, name, prefix=f"bucket {bucket}: ",
                             data={"bucket": bucket}) as failing:
            name = self.catalog.validate_new(name) if name else self.new_name(bucket, scheduled)
            failing.name = name
            entry = self._create(bucket, name, sorted({"scheduled" if scheduled else "manual",
                                                       *tags}), verify, upload, progress, counts)
        hooks.emit(hooks.BackupEvent(
            "backup_succeeded", KIND, name, f"{entry.object_count} objects, {entry.size_bytes} "
            "bytes", data={"bucket": bucket, "size_bytes": entry.size_bytes,
                           "locations": list(entry.locations)}))
        return entry

    def _create(self, bucket: str, name: str, tags: Tags, verify: bool, upload: bool,
                progress: ProgressFn, counts: CountsFn) -> BackupEntry:
        self.catalog.clean_incomplete()
        started, artifact, steps = self.clock(), f"{name}.tar.gz", StepTimer(self.clock)
        progress(f"listing {bucket}", None)
        objects = list(self.source.list_objects(bucket))
        steps.done("list", f"{len(objects)} objects")
        target: Upload | None = None
        remote = self.catalog.remote
        if upload and isinstance(remote, S3Store):
            target = Upload(self.backups_s3, remote.bucket, remote.prefix + artifact)
        total = sum(o.size for o in objects) or 1

        def report(phase: str, done: int, of: int, size: int, size_of: int) -> None:
            counts(phase, done, of, size, size_of)
            if phase == "fetching":
                progress(f"fetching {bucket}: {done}/{of} objects", min(1.0, size / total))

        sink = self.catalog.stage(artifact)
        try:
            built = build_archive(self.source, bucket, objects, sink, upload=target,
                                  spool_dir=self.catalog.local.root, workers=self.workers,
                                  clock=self.clock, counts=throttled(report), verify=verify)
            manifest = bucket_manifest(name, bucket, built, target, started=started,
                                       finished=self.clock(), tags=tags, steps=steps.steps)
            progress("committing", None)
            return self.catalog.publish(manifest)
        except BaseException:
            sink.abort()
            self.catalog.discard(artifact)
            raise

    # Verify ----------------------------------------------------------------------------------

    def verify(self, name: str, *, progress: ProgressFn = no_progress,
               lock: locks.OperationLock | None = None) -> BackupEntry:
        """Read every copy in full (gzip CRC, tar structure, each object's sha256, the
        archive's sha256) and record the result in the manifest.

        Raises InvalidInput, NotFound, Conflict, IntegrityError when a check failed (recorded
        first when the manifest can still be written, ``verification_failed`` emitted).
        """
        validate_name(name)
        with self._locked("verify", name, lock), \
                locks.mark_busy(self.settings.backups_dir, KIND, name, "verify"):
            try:
                entry = self.get(name)
            except IntegrityError as exc:  # a damaged backup; NotFound is no alert
                hooks.emit(hooks.BackupEvent("verification_failed", KIND, name, exc.message))
                raise
            progress(f"verifying {name}", None)
            result = self._check_copies(entry)
            entry = self.catalog.update(name, verification=result)
        if result.status == "failed":
            raise hooks.verification_failed(KIND, name, result.detail)
        hooks.emit(hooks.BackupEvent("verification_passed", KIND, name, VERIFY_METHOD))
        return entry

    def _check_copies(self, entry: BackupEntry) -> Verification:
        checks: dict[str, str] = {}
        failures: list[str] = []
        for store in self.catalog.tiers():
            if store.tier not in entry.locations:
                continue
            label = f"{store.tier} copy"
            try:
                with store.open(entry.artifact) as stream:
                    found = verify_archive(stream, expected_sha256=entry.sha256)
            except IntegrityError as exc:
                checks[label] = f"failed: {exc.message}"
                failures.append(f"{label}: {exc.message}")
                continue
            except AutographError as exc:
                checks[label] = f"not checked: {exc.message}"
                continue
            if found.objects != entry.object_count:
                failures.append(f"{label} holds {found.objects} objects, the manifest says "
                                f"{entry.object_count}")
            checks[label] = f"ok: {found.objects} objects, sha256 each"
        if not any(v.startswith("ok") for v in checks.values()) and not failures:
            failures.append("no copy could be read")
        return Verification(status="failed" if failures else "passed", at=self.clock(),
                            method=VERIFY_METHOD, checks=checks,
                            detail="; ".join(failures) or None)

    # Restore ---------------------------------------------------------------------------------

    def restore(self, name: str, target_bucket: str | None = None, *, overwrite: bool = False,
                progress: ProgressFn = no_progress, counts: CountsFn = no_counts,
                lock: locks.OperationLock | None = None) -> BucketRestoreResult:
        """Restore backup ``name`` into ``target_bucket`` (default: its source bucket, created
        if missing): content type and user metadata included; ``overwrite=False`` skips keys
        that exist. The archive's sha256 is checked before anything is written.

        Raises InvalidInput (names; a backup bucket as target), NotFound, Conflict,
        IntegrityError (no intact copy), DependencyDown (S3 unreachable).
        """
        validate_name(name)
        if target_bucket is not None:
            self.check_target(target_bucket)
        started = time.monotonic()
        with hooks.reporting("restore_failed", KIND, name), \
                self._locked("restore", name, lock), \
                locks.mark_busy(self.settings.backups_dir, KIND, name, "restore"):
            steps = StepTimer(self.clock)
            progress(f"fetching and checking {name}", None)
            self.get(name)
            fetched = self.catalog.fetch(name)
            target = self.check_target(target_bucket or fetched.entry.source)
            steps.done("fetch", f"{fetched.location} copy, sha256 matches")
            steps.start()
            total = fetched.entry.object_count or 1
            size_of = fetched.entry.extra.get("bytes", 0)
            size_of = size_of if isinstance(size_of, int) else 0

            def report(phase: str, done: int, of: int, size: int, _size_of: int) -> None:
                counts(phase, done, of, size, size_of)
                progress(f"restoring into {target}: {done}/{of} objects", done / of)

            shown = throttled(report)
            outcome = restore_archive(
                self.source, fetched.path, target, overwrite=overwrite,
                workers=self.workers,
                progress=lambda done, size: shown("restoring", done, total, size, size_of))
            steps.done("put objects", f"{outcome.restored} restored, "
                       f"{outcome.skipped} skipped, {len(outcome.failed)} failed")
        result = BucketRestoreResult(
            backup_name=name, kind=KIND, duration_seconds=round(time.monotonic() - started, 3),
            source_location=fetched.location, target=target, target_bucket=target,
            overwrite=overwrite, restored=outcome.restored, skipped=outcome.skipped,
            failed=len(outcome.failed), failed_keys=dict(list(outcome.failed.items())[:1000]),
            bytes_restored=outcome.bytes, steps=steps.steps, extra={"notes": list(fetched.notes)})
        event: hooks.EventName = "restore_failed" if outcome.failed else "restore_succeeded"
        hooks.emit(hooks.BackupEvent(
            event, KIND, name, f"into {target}: {outcome.restored} restored, {outcome.skipped} "
            f"skipped, {len(outcome.failed)} failed", data={"failed": len(outcome.failed)}))
        return result
