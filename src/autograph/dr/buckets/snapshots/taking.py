"""Taking a snapshot: list the bucket, reuse the parent snapshot's record of every object whose
etag, size and modification time did not change, fetch only the others (each distinct content
stored once, :mod:`.blobs`), then commit the index: S3 after its blobs, local, off-site."""

from __future__ import annotations

import builtins
import hashlib
import io
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from autograph.clock import Clock
from autograph.dr.buckets.snapshots.blobs import IN_MEMORY, EagerUpload, store_small, store_stream
from autograph.dr.buckets.snapshots.packs import PackBuilder, PackedBlobs
from autograph.dr.buckets.snapshots.store import (
    COMPRESSED_SUFFIX,
    INDEX_SUFFIX,
    Snapshot,
    SnapshotObject,
    SnapshotStore,
    merged,
    ship_snapshots,
    snapshot_name,
)
from autograph.dr.models import ProgressFn
from autograph.dr.storage.local import fsync_dir
from autograph.errors import (
    AutographError,
    DependencyDown,
    IntegrityError,
    NotFound,
    OperationFailed,
)
from autograph.s3.bulk import S3Client
from autograph.s3.response import ListedObject, ObjectMissing


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
class _Fetched:
    """What fetching the changed objects brought: their records and the counts."""

    vanished: list[str]
    new_blobs: int = 0
    new_bytes: int = 0


class SnapshotTaker:
    """Takes snapshots of one S3 server's buckets into a snapshot store."""

    def __init__(self, store: SnapshotStore, source: S3Client, backups_s3: S3Client, *,
                 clock: Clock, workers: int) -> None:
        self.store, self.source, self.backups_s3 = store, source, backups_s3
        self.clock, self.workers = clock, workers

    def take(self, bucket: str, progress: ProgressFn, accept_shrink: bool) -> SnapshotResult:
        """Snapshot ``bucket`` now (the caller holds the snapshot lock). Raises
        DependencyDown, IntegrityError, OperationFailed (local disk)."""
        began = time.monotonic()
        parent, parent_in_s3 = self._parent(bucket)
        started = self.clock()
        name = snapshot_name(bucket, started)
        progress(f"listing {bucket}", None)
        listed = list(self.source.list_objects(bucket))
        self.store.blobs_dir.mkdir(parents=True, exist_ok=True)
        kept, changed = self._unchanged(parent, listed)
        progress(f"{len(kept)} unchanged, fetching {len(changed)}", None)
        present = self._remote_blobs(parent if parent_in_s3 else None)
        eager = (EagerUpload(self.store.remote.blobs, present, self.backups_s3)
                 if self.store.remote is not None and present is not None else None)
        fetched = self._fetch_changed(bucket, changed, kept, eager)
        fsync_dir(self.store.blobs_dir)
        objects = [kept[k] for k in sorted(kept)]
        snapshot = Snapshot(name=name, bucket=bucket, started_at=started,
                            finished_at=self.clock(), objects=objects,
                            parent=parent.name if parent else None,
                            new_blobs=fetched.new_blobs, new_bytes=fetched.new_bytes,
                            vanished=fetched.vanished)
        if not accept_shrink:
            shrinkage(parent, snapshot)
        tiers, s3_error = self._commit(snapshot, eager, progress)
        return SnapshotResult(snapshot, round(time.monotonic() - began, 3),
                              reused=len(objects) - (len(changed) - len(fetched.vanished)),
                              tiers=tiers, s3_error=s3_error)

    def _unchanged(self, parent: Snapshot | None, listed: list[ListedObject]
                   ) -> tuple[dict[str, SnapshotObject], list[ListedObject]]:
        """The parent's records still true (same etag, size, time; blob present) by key, and
        the listed objects to fetch."""
        known = {o.key: o for o in parent.objects} if parent else {}
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
        return kept, changed

    def _fetch_changed(self, bucket: str, changed: list[ListedObject],
                       kept: dict[str, SnapshotObject], eager: EagerUpload | None) -> _Fetched:
        """Fetch ``changed`` into blobs, adding their records to ``kept``."""
        fetched = _Fetched(vanished=[])
        with ThreadPoolExecutor(self.workers, thread_name_prefix="snapshot") as pool:
            results = pool.map(lambda i: self._fetch(bucket, i, eager), changed)
            for item, result in zip(changed, results, strict=True):
                if result is None:
                    fetched.vanished.append(item.key)
                    continue
                record, fresh = result
                kept[item.key] = record
                if fresh:
                    fetched.new_blobs += 1
                    fetched.new_bytes += record.size
        return fetched

    def _commit(self, snapshot: Snapshot, eager: EagerUpload | None,
                progress: ProgressFn) -> tuple[list[str], str | None]:
        """Write the index: S3 after the blobs it lacks, then local (the commit point), then
        off-site (the backlog on failure). Returns the tiers and the S3 error, if any."""
        name, data = snapshot.name, snapshot.encode()
        s3_error = None
        tiers = ["local"]
        if self.store.remote is not None:
            try:
                progress("copying new blobs to S3", None)
                if eager is not None:
                    eager.finish()
                self._mirror_blobs(snapshot.objects, None if eager is None else
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
        return tiers, s3_error

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
        catching up on what the workers or an earlier snapshot could not upload: small ones
        in packs, each checked against its name first. Raises what the tier raised."""
        remote = self.store.remote
        assert remote is not None
        if present is None:
            present = {o.key for o in remote.blobs.list()}
        missing = sorted({o.blob_key for o in objects} - present)
        packer = (PackBuilder(remote.blobs, self.backups_s3)
                  if isinstance(remote.blobs, PackedBlobs) else None)
        lost: builtins.list[str] = []

        def upload(blob: str) -> None:
            path = self.store.blob_path(blob)
            plain = not blob.endswith(COMPRESSED_SUFFIX)  # its name is its sha256
            if packer is not None and path.stat().st_size <= IN_MEMORY:
                data = path.read_bytes()
                try:
                    body = data if plain else zlib.decompress(data)
                except zlib.error:
                    body = b""
                if hashlib.sha256(body).hexdigest() != blob.removesuffix(COMPRESSED_SUFFIX):
                    raise IntegrityError(f"local blob {blob[:12]}… is damaged; not copied")
                lost.extend(packer.add(blob, data) or [])
                return
            remote.blobs.put(blob, path, expected_sha256=blob if plain else None)

        with ThreadPoolExecutor(self.workers, thread_name_prefix="snapshot-s3") as pool:
            list(pool.map(upload, missing))
        if packer is not None:
            lost.extend(packer.flush() or [])
            if lost:  # the S3 index must not name them
                raise packer.error or OperationFailed(f"{len(lost)} blobs not copied to S3")


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
