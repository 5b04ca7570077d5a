"""Storing a snapshot's new blobs: one local write per blob and its S3 copy, in one pass.

A first snapshot stores every object of the bucket as a blob. It used to write each object twice
to disk (as it is and zlib-compressed, two fsyncs, one file then thrown away) and, once every
blob was on disk, read each one back to upload it to the S3 tier: two passes, one after the
other. Here an object that fits in memory (most do) is hashed and compressed in memory, only the
smaller form is written (one fsync), and the same bytes go to the S3 tier from the worker that
fetched them, gathered into packs (:mod:`.packs`), so the S3 copy overlaps the fetching. Larger
objects stream through two temporary files as before and are uploaded from the kept file.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from isal import isal_zlib

from autograph.dr.buckets.snapshots.packs import PackBuilder, PackedBlobs
from autograph.dr.buckets.snapshots.store import COMPRESSED_SUFFIX
from autograph.dr.storage import BackupStore
from autograph.errors import AutographError, IntegrityError
from autograph.s3.bulk import S3Client
from autograph.s3.response import ObjectHead

LARGE = 64 * 1024 * 1024  # never compressed, streamed on restore
IN_MEMORY = 4 * 1024 * 1024  # objects up to this size are hashed and compressed in memory
COMPRESS_LEVEL = 1  # ISA-L level 1: zlib's format (read back by zlib), a tenth of its CPU
PathOf = Callable[[str], Path]  # the local file of a blob key


@dataclass(frozen=True)
class StoredBlob:
    """A blob written to the local tier: its key, sizes, and where its bytes are now."""

    sha256: str
    blob: str
    size: int
    stored_size: int
    fresh: bool  # False when an identical blob was already there
    data: bytes | None  # the stored bytes when held in memory (else read ``path``)
    path: Path


def blob_key(sha: str, size: int, packed_size: int | None) -> str:
    """``<sha256>.z`` when zlib saved a tenth or more (objects of 256 bytes and up)."""
    use_packed = packed_size is not None and size >= 256 and packed_size <= 0.9 * size
    return sha + COMPRESSED_SUFFIX if use_packed else sha


def squeeze(data: bytes) -> bytes:
    """``data`` zlib-compressed the way every blob is (snapshots and the outbox replicator
    alike, so the same bytes get the same blob name). zlib level 3 spent 3 ms on 100 KB of
    random bytes, ISA-L 0.23 ms: half a first snapshot's objects are such bytes."""
    return bytes(isal_zlib.compress(data, COMPRESS_LEVEL))


def store_small(folder: Path, body: bytes, path_of: PathOf) -> StoredBlob:
    """Hash, compress and write one object held in memory (one file, one fsync)."""
    sha = hashlib.sha256(body).hexdigest()
    packed = squeeze(body)
    blob = blob_key(sha, len(body), len(packed))
    data = packed if blob.endswith(COMPRESSED_SUFFIX) else body
    target = path_of(blob)
    if target.exists():
        return StoredBlob(sha, blob, len(body), len(data), False, data, target)
    temp = folder / f".incoming-{secrets.token_hex(8)}"
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        fresh = _link(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return StoredBlob(sha, blob, len(body), len(data), fresh, data, target)


def store_stream(folder: Path, chunks: Iterable[bytes | bytearray], head: ObjectHead,
                 path_of: PathOf) -> StoredBlob:
    """Write a large object as it streams in: as it is and (under LARGE) zlib-compressed; keep
    the compressed file when it saves a tenth or more."""
    token = secrets.token_hex(8)
    raw_temp, packed_temp = folder / f".incoming-{token}", folder / f".incoming-{token}.z"
    digest = hashlib.sha256()
    size = 0
    packer = isal_zlib.compressobj(COMPRESS_LEVEL) if head.size < LARGE else None
    try:
        with open(raw_temp, "wb") as raw, open(packed_temp, "wb") as packed:
            for chunk in chunks:
                digest.update(chunk)
                raw.write(chunk)
                if packer is not None:
                    packed.write(packer.compress(chunk))
                size += len(chunk)
            if packer is not None:
                packed.write(packer.flush())
            packed_size = packed.tell() if packer is not None else None
        if size != head.size:
            raise IntegrityError(f"read {size} of {head.size} bytes")
        sha = digest.hexdigest()
        blob = blob_key(sha, size, packed_size)
        kept = packed_temp if blob.endswith(COMPRESSED_SUFFIX) else raw_temp
        with open(kept, "rb+") as handle:
            os.fsync(handle.fileno())
        fresh = _link(kept, path_of(blob))
        stored = packed_size if blob.endswith(COMPRESSED_SUFFIX) else size
    finally:
        raw_temp.unlink(missing_ok=True)
        packed_temp.unlink(missing_ok=True)
    return StoredBlob(sha, blob, size, stored or 0, fresh, None, path_of(blob))


def _link(temp: Path, target: Path) -> bool:
    """Atomic "create unless present" (two workers may hold the same bytes): True if created."""
    try:
        os.link(temp, target)
    except FileExistsError:
        return False
    return True


class EagerUpload:
    """Uploads blobs to the S3 tier from the workers that stored them, skipping those the tier
    holds (``present``). Failures are not raised: the blob stays missing and the snapshot's
    final pass over missing blobs retries it (and records the tier's error).

    A blob held in memory joins a pack (:mod:`.packs`: a few PUTs for a whole bucket of small
    objects, through the lean SigV4 client); a streamed one is uploaded on its own by the
    tier's store. :meth:`finish` sends the last pack.
    """

    def __init__(self, remote: BackupStore, present: set[str], client: S3Client) -> None:
        self._remote = remote
        self._packer = PackBuilder(remote, client) if isinstance(remote, PackedBlobs) else None
        self.present = present
        self.uploaded: set[str] = set()
        self._lock = threading.Lock()

    def offer(self, stored: StoredBlob) -> None:
        """Upload ``stored`` (or add it to the pack being gathered) unless the tier has it."""
        with self._lock:
            if stored.blob in self.present or stored.blob in self.uploaded:
                return
            self.uploaded.add(stored.blob)  # claimed: another worker with the same bytes skips
        if stored.data is not None and self._packer is not None:
            self._lost(self._packer.add(stored.blob, stored.data))
            return
        plain = not stored.blob.endswith(COMPRESSED_SUFFIX)  # its name is its sha256
        source = io.BytesIO(stored.data) if stored.data is not None else stored.path
        try:
            self._remote.put(stored.blob, source, expected_sha256=stored.blob if plain else None)
        except AutographError:
            self._lost([stored.blob])

    def finish(self) -> None:
        """Send the pack still being gathered."""
        if self._packer is not None:
            self._lost(self._packer.flush())

    def _lost(self, blobs: list[str] | None) -> None:
        if blobs:
            with self._lock:
                self.uploaded.difference_update(blobs)
