"""Incremental bucket snapshots (SPEC §7): take, list, verify, restore, prune.

Taking one lists the bucket, reuses the previous snapshot's record of every object whose etag,
size and modification time did not change, and fetches only the others, storing each distinct
content once (:mod:`.snapshot_store`). So a snapshot every few minutes costs one listing plus
the changed bytes, and each one restores as the bucket's full state at its start time. One
snapshot operation (take, restore, prune) runs at a time (the ``snapshot`` lock); the lock is
separate from the archive backups', which keep running on their own schedule.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import time
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast

from autograph.clock import Clock, isoformat, utc_now
from autograph.config import Settings
from autograph.dr.buckets.models import validate_bucket
from autograph.dr.buckets.restore import put_objects
from autograph.dr.buckets.snapshots.blobs import (
    IN_MEMORY,
    LARGE,
    EagerUpload,
    store_small,
    store_stream,
)
from autograph.dr.buckets.snapshots.prune import PruneReport, SnapshotPolicy, prune
from autograph.dr.buckets.snapshots.store import (
    COMPRESSED_SUFFIX,
    INDEX_SUFFIX,
    Snapshot,
    SnapshotObject,
    SnapshotStore,
    merged,
    parse_name,
    ship_snapshots,
    snapshot_name,
)
from autograph.dr.models import ProgressFn, no_progress
from autograph.dr.ops import hooks, locks
from autograph.dr.storage.local import fsync_dir
from autograph.errors import (
    AutographError,
    Conflict,
    DependencyDown,
    IntegrityError,
    InvalidInput,
    NotFound,
    OperationFailed,
)
from autograph.s3.bulk import S3Client, S3Endpoint
from autograph.s3.response import ListedObject, ObjectMissing
from autograph.secrets import Credentials

LOCK_KIND = "snapshot"
KIND = "snapshot"
PREFETCH_THREADS = 3
PREFETCH_BYTES = 32 * 1024 * 1024


@dataclass
class SnapshotResult:
    """What taking a snapshot did."""

    snapshot: Snapshot
    duration_seconds: float
    reused: int
    tiers: list[str]
    s3_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.snapshot.summary(), "duration_seconds": self.duration_seconds,
                "reused": self.reused, "tiers": self.tiers, "s3_error": self.s3_error}


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
                result = self._take(bucket, progress, accept_shrink)
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

    def _take(self, bucket: str, progress: ProgressFn, accept_shrink: bool) -> SnapshotResult:
        began = time.monotonic()
        parent, parent_in_s3 = self._parent(bucket)
        known = {o.key: o for o in parent.objects} if parent else {}
        started = self.clock()
        name = snapshot_name(bucket, started)
        progress(f"listing {bucket}", None)
        listed = list(self.source.list_objects(bucket))
        blobs_dir = self.store.blobs_dir
        blobs_dir.mkdir(parents=True, exist_ok=True)
        kept: dict[str, SnapshotObject] = {}
        changed: list[ListedObject] = []
        for item in listed:
            old = known.get(item.key)
            if (old is not None and old.etag == item.etag and old.size == item.size
                    and old.last_modified == item.last_modified
                    and self.store.blob_path(old.blob_key).exists()):
                kept[item.key] = old
            else:
                changed.append(item)
        progress(f"{len(kept)} unchanged, fetching {len(changed)}", None)
        vanished: list[str] = []
        new_blobs = new_bytes = 0
        present = self._remote_blobs(parent if parent_in_s3 else None)
        eager = (EagerUpload(self.store.remote.blobs, present, self.backups_s3)
                 if self.store.remote is not None and present is not None else None)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="snapshot") as pool:
            fetches = pool.map(lambda i: self._fetch(bucket, i, eager), changed)
            for item, fetched in zip(changed, fetches, strict=True):
                if fetched is None:
                    vanished.append(item.key)
                    continue
                record, fresh = fetched
                kept[item.key] = record
                if fresh:
                    new_blobs += 1
                    new_bytes += record.size
        fsync_dir(blobs_dir)
        objects = [kept[k] for k in sorted(kept)]
        snapshot = Snapshot(name=name, bucket=bucket, started_at=started,
                            finished_at=self.clock(), objects=objects,
                            parent=parent.name if parent else None, new_blobs=new_blobs,
                            new_bytes=new_bytes, vanished=vanished)
        if not accept_shrink:
            shrinkage(parent, snapshot)
        data = snapshot.encode()
        s3_error = None
        tiers = ["local"]
        if self.store.remote is not None:
            try:
                progress("copying new blobs to S3", None)
                self._mirror_blobs(objects, None if eager is None else
                                   eager.present | eager.uploaded)
                self.store.remote.index.put(name + INDEX_SUFFIX, io.BytesIO(data))
                tiers.append("s3")
            except AutographError as exc:
                s3_error = exc.message
        self.store.local.index.put(name + INDEX_SUFFIX, io.BytesIO(data))
        if self.store.offsite is not None:  # after the local commit; the backlog on failure
            progress("copying to the off-site tier", None)
            if name in ship_snapshots(self.store).shipped:
                tiers.append("offsite")
        return SnapshotResult(snapshot, round(time.monotonic() - began, 3),
                              reused=len(objects) - (len(changed) - len(vanished)),
                              tiers=tiers, s3_error=s3_error)

    def _parent(self, bucket: str) -> tuple[Snapshot | None, bool]:
        """The newest readable snapshot of ``bucket``, and whether the S3 tier holds it."""
        per_tier, _ = self.store.names(bucket)
        in_s3 = set(per_tier.get("s3", []))
        for name in reversed(merged(per_tier)):
            try:
                return self.store.load(name)[0], name in in_s3
            except (IntegrityError, NotFound, DependencyDown):
                continue
        return None, False

    def _fetch(self, bucket: str, item: ListedObject,
               upload: EagerUpload | None) -> tuple[SnapshotObject, bool] | None:
        """Store one object's bytes as a blob; None when it was deleted since the listing."""
        for attempt in range(3):
            try:
                return self._fetch_once(bucket, item, upload)
            except ObjectMissing:
                return None
            except (DependencyDown, IntegrityError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _fetch_once(self, bucket: str, item: ListedObject,
                    upload: EagerUpload | None) -> tuple[SnapshotObject, bool]:
        """Read the object once into a blob (:mod:`.blobs`), handing new blobs to ``upload``."""
        folder, path_of = self.store.blobs_dir, self.store.blob_path
        with self.source.get_object(bucket, item.key) as resp:
            head = resp.head()
            if head.size <= IN_MEMORY:
                body = b"".join(resp.chunks())
                if len(body) != head.size:
                    raise IntegrityError(f"{item.key}: read {len(body)} of {head.size} bytes")
                stored = store_small(folder, body, path_of)
            else:
                try:
                    stored = store_stream(folder, resp.chunks(), head, path_of)
                except IntegrityError as exc:
                    raise IntegrityError(f"{item.key}: {exc.message}") from None
        if upload is not None:
            upload.offer(stored)
        record = SnapshotObject(key=item.key, size=stored.size, etag=head.etag or item.etag,
                                last_modified=item.last_modified if head.etag == item.etag
                                else head.last_modified, content_type=head.content_type,
                                metadata=dict(head.metadata), sha256=stored.sha256,
                                blob=stored.blob, stored_size=stored.stored_size
                                if stored.blob.endswith(COMPRESSED_SUFFIX) else stored.size)
        return record, stored.fresh

    def _remote_blobs(self, committed_parent: Snapshot | None) -> set[str] | None:
        """The blobs the S3 tier holds: those of the parent snapshot when it is committed
        there (its index was written after them: no listing), else a listing; None when the
        tier is unreachable or absent."""
        remote = self.store.remote
        if remote is None:
            return None
        if committed_parent is not None:
            return {o.blob_key for o in committed_parent.objects}
        try:
            return {o.key for o in remote.blobs.list()}
        except AutographError:
            return None

    def _mirror_blobs(self, objects: builtins.list[SnapshotObject],
                      present: set[str] | None) -> None:
        """Upload the blobs the S3 tier lacks (``present``: what it holds, None to list it),
        catching up on what the workers or an earlier snapshot could not upload."""
        remote = self.store.remote
        assert remote is not None
        if present is None:
            present = {o.key for o in remote.blobs.list()}
        missing = sorted({o.blob_key for o in objects} - present)

        def upload(blob: str) -> None:
            plain = not blob.endswith(COMPRESSED_SUFFIX)  # its name is its sha256
            remote.blobs.put(blob, self.store.blob_path(blob),
                             expected_sha256=blob if plain else None)

        with ThreadPoolExecutor(self.workers, thread_name_prefix="snapshot-s3") as pool:
            list(pool.map(upload, missing))

    def prune(self, *, dry_run: bool = False,
              lock: locks.OperationLock | None = None) -> PruneReport:
        """Thin the snapshots of every application bucket per the settings' policy and
        collect unreferenced blobs. Raises Conflict while another snapshot operation runs."""
        policy = SnapshotPolicy(keep_all=timedelta(seconds=self.settings.snapshot_keep_all_seconds),
                                hourly=self.settings.snapshot_keep_hourly,
                                daily=self.settings.snapshot_keep_daily)
        held = lock or self.acquire("prune")
        try:
            return prune(self.store, self.settings.app_buckets, self.clock(), policy,
                         dry_run=dry_run)
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
                     if not _blob_ok(self.store.blob_path(key), o, deep)}
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
            sources = self._locate(snapshot)
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
                self.source, target, self._items(snapshot, sources),
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
        sources = self._locate(snapshot)
        for _record, stream in self._items(snapshot, sources):
            while stream.read(1 << 20):
                pass
        tiers: dict[str, int] = {}
        for tier in sources.values():
            tiers[tier] = tiers.get(tier, 0) + 1
        return snapshot, tiers

    def _locate(self, snapshot: Snapshot) -> dict[str, str]:
        """``{sha256: tier}`` for every blob, local first. Raises IntegrityError naming the
        blobs no tier has (nothing is written then)."""
        where: dict[str, str] = {}
        blobs = {o.blob_key: o for o in snapshot.objects}
        sizes = {key: o.blob_size for key, o in blobs.items()}
        for key, record in blobs.items():
            if _blob_ok(self.store.blob_path(key), record, False):
                where[key] = "local"
        for tier in self.store.tiers()[1:]:  # S3, then off-site
            lacking = set(sizes) - set(where)
            if not lacking:
                break
            with contextlib.suppress(DependencyDown):
                remote = {o.key: o.size for o in tier.blobs.list()}
                for key in lacking:
                    if remote.get(key) == sizes[key]:
                        where[key] = tier.name
        lacking = set(sizes) - set(where)
        if lacking:
            raise IntegrityError(f"snapshot {snapshot.name}: {len(lacking)} of {len(sizes)} "
                                 f"blobs are in no tier (e.g. {sorted(lacking)[0]}); nothing "
                                 "was restored")
        return where

    def _items(self, snapshot: Snapshot,
               sources: dict[str, str]) -> Iterator[tuple[SnapshotObject, BinaryIO]]:
        """Each object with its checked bytes, in order; blobs are read, unpacked and hashed
        ahead by a few threads (zlib and hashlib let go of the GIL), up to PREFETCH_BYTES."""
        pending: deque[tuple[SnapshotObject, Future[BinaryIO]]] = deque()
        records = iter(snapshot.objects)
        held = 0
        with ThreadPoolExecutor(PREFETCH_THREADS, thread_name_prefix="snapshot-read") as pool:
            while True:
                while not pending or held < PREFETCH_BYTES:
                    record = next(records, None)
                    if record is None:
                        break
                    pending.append((record, pool.submit(
                        self._open_blob, record, sources[record.blob_key])))
                    held += min(record.size, LARGE)
                if not pending:
                    return
                record, future = pending.popleft()
                held -= min(record.size, LARGE)
                yield record, future.result()

    def _open_blob(self, record: SnapshotObject, tier: str) -> BinaryIO:
        """The object's bytes from its blob, checked against its sha256 (the local copy
        first, then S3)."""
        if tier == "local" and record.size < LARGE:
            data = _unpacked(record, self.store.blob_path(record.blob_key).read_bytes())
            if data is not None:
                return io.BytesIO(data)
            tier = "s3"
        if tier == "local":  # large: never compressed, checked as it streams
            return cast(BinaryIO, _Checked(
                open(self.store.blob_path(record.blob_key), "rb"), record))
        tiers = [t for t in self.store.tiers()[1:] if t.name == tier] or self.store.tiers()[1:2]
        if not tiers:
            raise IntegrityError(f"{record.key}: local blob damaged and no S3 tier")
        with tiers[0].blobs.open(record.blob_key) as handle:
            data = _unpacked(record, handle.read())
        if data is None:
            raise IntegrityError(f"{record.key}: blob {record.sha256[:12]}… is damaged in "
                                 "every tier")
        return io.BytesIO(data)


def _unpacked(record: SnapshotObject, stored: bytes) -> bytes | None:
    """The object's bytes from its stored blob, or None when they do not hash right."""
    try:
        data = zlib.decompress(stored) if record.compressed else stored
    except zlib.error:
        return None
    return data if hashlib.sha256(data).hexdigest() == record.sha256 else None


class _Checked(io.RawIOBase):
    """A blob file that raises IntegrityError when its last byte is read and the sha256 of
    what was read differs from the record's."""

    def __init__(self, handle: BinaryIO, record: SnapshotObject) -> None:
        super().__init__()
        self._handle, self._record = handle, record
        self._digest, self._read = hashlib.sha256(), 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._handle.read(size)
        self._digest.update(data)
        self._read += len(data)
        if self._read >= self._record.size or not data:
            self._handle.close()
            if self._digest.hexdigest() != self._record.sha256:
                raise IntegrityError(f"{self._record.key}: blob {self._record.sha256[:12]}… "
                                     "is damaged")
        return data


SHRINK_FRACTION = 0.5
SHRINK_MIN_OBJECTS = 4


def shrinkage(parent: Snapshot | None, snapshot: Snapshot) -> None:
    """Flag ``snapshot`` as a mass deletion when it holds under half the objects of the last
    snapshot that was not flagged (its baseline, carried along while the bucket stays small,
    so the snapshots after a disaster stay flagged too). Recovery passes over flagged
    snapshots: they recorded the disaster, not the data. ``take(accept_shrink=True)``
    starts a new baseline after a deletion that was meant."""
    if parent is None:
        return
    if parent.shrunk and parent.baseline:
        baseline, count = parent.baseline, parent.baseline_objects
    else:
        baseline, count = parent.name, len(parent.objects)
    if count < SHRINK_MIN_OBJECTS or len(snapshot.objects) >= SHRINK_FRACTION * count:
        return
    snapshot.shrunk = (f"{count - len(snapshot.objects)} of the {count} objects of "
                       f"{baseline} are gone")
    snapshot.baseline, snapshot.baseline_objects = baseline, count


def _blob_ok(path: Path, record: SnapshotObject, hashed: bool) -> bool:
    """The blob is there with its stored size (``hashed``: and its bytes hash right)."""
    try:
        if path.stat().st_size != record.blob_size:
            return False
    except OSError:
        return False
    if not hashed:
        return True
    if record.compressed:
        return _unpacked(record, path.read_bytes()) is not None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == record.sha256

