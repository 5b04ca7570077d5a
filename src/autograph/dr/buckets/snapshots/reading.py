"""Reading a snapshot back: where each blob is (the local copy of the right size, else the S3
tier, else off-site), and every object's bytes in order, each checked against its sha256,
read ahead by a few threads."""

from __future__ import annotations

import contextlib
import hashlib
import io
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, cast

from autograph.dr.buckets.snapshots.blobs import LARGE
from autograph.dr.buckets.snapshots.store import Snapshot, SnapshotObject, SnapshotStore
from autograph.errors import DependencyDown, IntegrityError

PREFETCH_THREADS = 3  # local blobs: reading is disk and CPU (zlib, sha256), a few suffice
# Blobs from S3 or off-site are one GET each (off-site: decrypted too), a round trip of tens
# of milliseconds: 25,000 of them three at a time took 268 s. Many at once keep the remote
# servers busy; bounded by PREFETCH_BYTES and by the clients' connection pools (32).
REMOTE_PREFETCH_THREADS = 16
PREFETCH_BYTES = 32 * 1024 * 1024


def locate(store: SnapshotStore, snapshot: Snapshot) -> dict[str, str]:
    """``{sha256: tier}`` for every blob, local first. Raises IntegrityError naming the
    blobs no tier has (nothing is written then)."""
    where: dict[str, str] = {}
    blobs = {o.blob_key: o for o in snapshot.objects}
    sizes = {key: o.blob_size for key, o in blobs.items()}
    for key, record in blobs.items():
        if blob_ok(store.blob_path(key), record, False):
            where[key] = "local"
    for tier in store.tiers()[1:]:  # S3, then off-site
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

def read_objects(store: SnapshotStore, snapshot: Snapshot,
                 sources: dict[str, str]) -> Iterator[tuple[SnapshotObject, BinaryIO]]:
    """Each object with its checked bytes, in order; blobs are read, unpacked and hashed
    ahead by a few threads (zlib and hashlib let go of the GIL; many more when blobs come
    from a remote tier), up to PREFETCH_BYTES."""
    pending: deque[tuple[SnapshotObject, Future[BinaryIO]]] = deque()
    records = iter(snapshot.objects)
    held = 0
    remote = any(tier != "local" for tier in sources.values())
    threads = REMOTE_PREFETCH_THREADS if remote else PREFETCH_THREADS
    with ThreadPoolExecutor(threads, thread_name_prefix="snapshot-read") as pool:
        while True:
            while not pending or held < PREFETCH_BYTES:
                record = next(records, None)
                if record is None:
                    break
                pending.append((record, pool.submit(
                    open_blob, store, record, sources[record.blob_key])))
                held += min(record.size, LARGE)
            if not pending:
                return
            record, future = pending.popleft()
            held -= min(record.size, LARGE)
            yield record, future.result()

def open_blob(store: SnapshotStore, record: SnapshotObject, tier: str) -> BinaryIO:
    """The object's bytes from its blob, checked against its sha256 (the local copy
    first, then S3)."""
    if tier == "local" and record.size < LARGE:
        data = _unpacked(record, store.blob_path(record.blob_key).read_bytes())
        if data is not None:
            return io.BytesIO(data)
        tier = "s3"
    if tier == "local":  # large: never compressed, checked as it streams
        return cast(BinaryIO, _Checked(
            open(store.blob_path(record.blob_key), "rb"), record))
    tiers = [t for t in store.tiers()[1:] if t.name == tier] or store.tiers()[1:2]
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



def blob_ok(path: Path, record: SnapshotObject, hashed: bool) -> bool:
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

