"""Incremental bucket snapshots (SPEC §7): take, list, verify, restore, prune.

Taking one (:mod:`.taking`) lists the bucket, reuses the previous snapshot's record of every
object whose etag, size and modification time did not change, and fetches only the others,
storing each distinct content once (:mod:`.store`). So a snapshot every few minutes costs one
listing plus the changed bytes, and each one restores as the bucket's full state at its start
time (read back by :mod:`.reading`). One
snapshot operation (take, restore, prune) runs at a time (the ``snapshot`` lock); the lock is
separate from the archive backups', which keep running on their own schedule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autograph.clock import Clock, isoformat, utc_now
from autograph.config import Settings
from autograph.dr.buckets.models import validate_bucket
from autograph.dr.buckets.restore import put_objects
from autograph.dr.buckets.snapshots.prune import prune, snapshot_policy
from autograph.dr.buckets.snapshots.reading import blob_ok, locate, read_objects
from autograph.dr.buckets.snapshots.store import (
    Snapshot,
    SnapshotStore,
    parse_name,
)
from autograph.dr.buckets.snapshots.taking import SnapshotResult, SnapshotTaker
from autograph.dr.models import ProgressFn, no_progress
from autograph.dr.ops import hooks, locks
from autograph.dr.retention.prune import PruneReport
from autograph.errors import (
    Conflict,
    DependencyDown,
    InvalidInput,
    OperationFailed,
)
from autograph.s3.bulk import S3Client
from autograph.s3.sigv4 import S3Endpoint
from autograph.secrets import Credentials

LOCK_KIND = "snapshot"
KIND = "snapshot"
PREFETCH_THREADS = 3
PREFETCH_BYTES = 32 * 1024 * 1024


@dataclass
class SnapshotRestore:
    """What restoring a snapshot did (``extra``: keys in the bucket the snapshot lacks)."""

    name: str
    bucket: str
    target_bucket: str
    restored: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    extra: int = 0
    duration_seconds: float = 0.0
    blobs_from: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"backup_name": self.name, "bucket": self.bucket,
                "target_bucket": self.target_bucket, "restored": self.restored,
                "skipped": self.skipped, "failed": len(self.failed),
                "failed_keys": dict(list(self.failed.items())[:20]), "extra_keys": self.extra,
                "duration_seconds": self.duration_seconds, "blobs_from": self.blobs_from}


class SnapshotManager:
    """Incremental snapshots of the application's buckets."""

    def __init__(self, settings: Settings, creds: Credentials, *, clock: Clock = utc_now,
                 source: S3Client | None = None, store: SnapshotStore | None = None,
                 workers: int = 8) -> None:
        self.settings = settings
        self.store = store or SnapshotStore(settings, creds)
        self.source = source or S3Client(S3Endpoint.application(settings, creds),
                                         timeout=30.0, retries=2)
        self.clock = clock
        self.workers = workers
        self.backups_s3 = S3Client(S3Endpoint.backups(settings, creds), timeout=30.0, retries=2)
        self.taker = SnapshotTaker(self.store, self.source, self.backups_s3, clock=clock,
                                   workers=workers)

    def acquire(self, operation: str, target: str = "") -> locks.OperationLock:
        """Take the snapshot lock now (Conflict when another snapshot operation runs)."""
        return locks.acquire(self.settings.backups_dir, LOCK_KIND, operation, target)

    def _acquire_waiting(self, operation: str, target: str,
                         timeout: float = 300.0) -> locks.OperationLock:
        """The snapshot lock, waiting up to ``timeout`` for a scheduled snapshot to end (a
        recovery must not fail because the gateway was snapshotting). Raises Conflict."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.acquire(operation, target)
            except Conflict:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    # Listing ---------------------------------------------------------------------------------

    def list(self, bucket: str | None = None) -> dict[str, Any]:
        """Snapshots newest first with the tiers holding them (indexes are not read)."""
        if bucket:
            validate_bucket(bucket)
        per_tier, unreachable = self.store.names(bucket)
        merged: dict[str, list[str]] = {}
        for tier, names in per_tier.items():
            for name in names:
                merged.setdefault(name, []).append(tier)
        rows = []
        for name, tiers in merged.items():
            source, started = parse_name(name)
            rows.append({"name": name, "bucket": source, "started_at": isoformat(started),
                         "locations": tiers})
        rows.sort(key=lambda r: (r["started_at"], r["name"]), reverse=True)
        return {"snapshots": rows, "unreachable": unreachable}

    def latest(self, bucket: str, at: datetime | None = None) -> str | None:
        """The newest snapshot of ``bucket`` (finished by ``at`` when given), or None.

        A snapshot finishes shortly after its start; ``at`` is compared with the start plus
        nothing, so a snapshot begun just before ``at`` may hold a write made after it: the
        caller wanting a strict bound reads ``finished_at`` from the index."""
        names = self.store.all_names(bucket)
        if at is not None:
            names = [n for n in names if parse_name(n)[1] <= at]
        return names[-1] if names else None

    def load(self, name: str) -> Snapshot:
        return self.store.load(name)[0]

    # Taking ----------------------------------------------------------------------------------

    def check_source(self, bucket: str) -> str:
        """An application bucket that may be snapshotted, else InvalidInput (the routes call
        it before answering 202 for a job)."""
        validate_bucket(bucket)
        if bucket not in self.settings.app_buckets:
            raise InvalidInput(f"{bucket} is not an application bucket "
                               f"({', '.join(self.settings.app_buckets)})")
        return bucket

    def take(self, bucket: str, *, accept_shrink: bool = False,
             progress: ProgressFn = no_progress,
             lock: locks.OperationLock | None = None) -> SnapshotResult:
        """Snapshot ``bucket`` now. Raises InvalidInput, Conflict, DependencyDown (the bucket's
        server unreachable), OperationFailed (local disk). Nothing is listed as a snapshot
        unless its index was written, after every blob it names."""
        self.check_source(bucket)
        held = lock or self.acquire("snapshot", bucket)
        try:
            with hooks.reporting("backup_failed", KIND, bucket, data={"bucket": bucket}):
                result = self.taker.take(bucket, progress, accept_shrink)
        finally:
            held.release()
        if result.snapshot.shrunk:
            hooks.emit(hooks.BackupEvent("backup_small", KIND, result.snapshot.name,
                                         result.snapshot.shrunk, data={"bucket": bucket}))
        hooks.emit(hooks.BackupEvent(
            "backup_succeeded", KIND, result.snapshot.name,
            f"{len(result.snapshot.objects)} objects, {result.snapshot.new_blobs} new",
            data={"bucket": bucket, "size": result.snapshot.size,
                  "shrunk": bool(result.snapshot.shrunk),
                  "duration_seconds": result.duration_seconds}))
        return result

    def prune(self, *, dry_run: bool = False,
              lock: locks.OperationLock | None = None) -> PruneReport:
        """Prune the snapshots of every application bucket with the settings' retention policy
        (:func:`.prune.snapshot_policy`) and collect unreferenced blobs. Raises Conflict while
        another snapshot operation runs."""
        held = lock or self.acquire("prune")
        try:
            return prune(self.store, self.settings.app_buckets, self.clock(),
                         snapshot_policy(self.settings), dry_run=dry_run)
        finally:
            held.release()

    # Verifying and restoring -----------------------------------------------------------------

    def verify(self, name: str, *, deep: bool = False) -> dict[str, Any]:
        """Check that every blob the snapshot names is in each reachable tier with its size
        (``deep``: the local blobs hashed too). Raises InvalidInput, NotFound, IntegrityError
        (unreadable index), DependencyDown."""
        snapshot, _ = self.store.load(name)
        blobs = {o.blob_key: o for o in snapshot.objects}
        result: dict[str, Any] = {"name": name, "objects": len(snapshot.objects),
                                  "blobs": len(blobs), "tiers": {}}
        local_bad = {key for key, o in blobs.items()
                     if not blob_ok(self.store.blob_path(key), o, deep)}
        result["tiers"]["local"] = {"missing_or_damaged": len(local_bad),
                                    "sample": sorted(local_bad)[:5], "hashed": deep}
        remote_bad = set(blobs)
        if self.store.remote is not None:
            try:
                sizes = {o.key: o.size for o in self.store.remote.blobs.list()}
                remote_bad = {key for key, o in blobs.items() if sizes.get(key) != o.blob_size}
                result["tiers"]["s3"] = {"missing_or_damaged": len(remote_bad),
                                         "sample": sorted(remote_bad)[:5], "hashed": False}
            except DependencyDown as exc:
                result["tiers"]["s3"] = {"unreachable": exc.message}
        result["restorable"] = not (local_bad & remote_bad)
        intact = not local_bad and not (self.store.remote is not None and remote_bad)
        result["status"] = ("passed" if intact else
                            "degraded" if result["restorable"] else "failed")
        return result

    def restore(self, name: str, *, target_bucket: str | None = None, overwrite: bool = False,
                progress: ProgressFn = no_progress,
                lock: locks.OperationLock | None = None) -> SnapshotRestore:
        """Put the bucket back as the snapshot recorded it, into ``target_bucket`` (default:
        the snapshot's bucket, created if missing). ``overwrite=False`` keeps existing keys.

        Every blob is located (local copy of the right size, else the S3 tier) before anything
        is written; each is checked against its sha256 as it is read. Raises InvalidInput,
        NotFound, IntegrityError (a blob missing from every tier, or damaged), Conflict,
        DependencyDown, OperationFailed (objects that failed after retries)."""
        snapshot, _ = self.store.load(name)
        target = validate_bucket(target_bucket or snapshot.bucket, "target bucket")
        if target in (self.settings.backup_bucket_objects, self.settings.backup_bucket_database):
            raise InvalidInput(f"target bucket {target} holds backups; choose another")
        held = lock or self._acquire_waiting("restore", name)
        began = time.monotonic()
        try:
            sources = locate(self.store, snapshot)
            result = SnapshotRestore(name, snapshot.bucket, target)
            for where in sources.values():
                result.blobs_from[where] = result.blobs_from.get(where, 0) + 1
            if not self.source.bucket_exists(target):
                self.source.create_bucket(target)
            present = {o.key for o in self.source.list_objects(target)}
            wanted = {o.key for o in snapshot.objects}
            result.extra = len(present - wanted)
            progress(f"restoring {len(snapshot.objects)} objects into {target}", None)
            outcome = put_objects(
                self.source, target, read_objects(self.store, snapshot, sources),
                skip=(present.__contains__ if not overwrite else lambda _k: False),
                if_absent=not overwrite, workers=self.workers * 2, attempts=2)
        finally:
            held.release()
        result.restored, result.skipped = outcome.restored, outcome.skipped
        result.failed = outcome.failed
        result.duration_seconds = round(time.monotonic() - began, 3)
        if result.failed:
            raise OperationFailed(f"{len(result.failed)} objects of {name} failed to restore "
                                  f"into {target}: {next(iter(result.failed.items()))}")
        return result

    def read_all(self, name: str) -> tuple[Snapshot, dict[str, int]]:
        """Read every object of snapshot ``name`` from its blobs, each checked against its
        sha256, as a restore would (a restore test with no target bucket). Returns the
        snapshot and the blobs read per tier. Raises NotFound, IntegrityError, DependencyDown."""
        snapshot, _ = self.store.load(name)
        sources = locate(self.store, snapshot)
        for _record, stream in read_objects(self.store, snapshot, sources):
            while stream.read(1 << 20):
                pass
        tiers: dict[str, int] = {}
        for tier in sources.values():
            tiers[tier] = tiers.get(tier, 0) + 1
        return snapshot, tiers

