"""The S3 tier's blob store: loose blobs and packs of small ones, seen as one ``BackupStore``.

A first snapshot stores every object as a blob. Uploaded one PUT per blob, the S3 server spent
more CPU storing 2,000 small objects than the whole archive took, and on two cores that was the
first snapshot's time. As restic does, a snapshot now sends its small blobs in packs: one
object ``snapshots/packs/<sha256>.pack`` holding the stored bytes of many blobs back to back,
then its index ``<sha256>.idx`` (JSON: each blob's offset and length). The index is the pack's
commit point: a pack without one is invisible (and collected by pruning), so a snapshot's index,
written after its packs' indexes, names only blobs that can be read.

:class:`PackedBlobs` answers for both kinds: ``list``/``stat``/``open`` see a packed blob as if
it were a loose one of its stored size (``open`` is a ranged GET), so restores, verification,
the outbox replicator and recovery read the tier as before; ``put`` stores loose blobs (the
replicator's, large ones). Deleting a packed blob rewrites its pack's index without it; the
pack goes when its index names nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from autograph.dr.storage import ByteProgress, Sink, StoredObject
from autograph.dr.storage.s3 import S3Store, s3_error
from autograph.errors import AutographError, IntegrityError, NotFound
from autograph.s3.bulk import S3Client

PACK_BYTES = 8 * 1024 * 1024  # a pack is sent once it holds this much
PACK_MIN_BLOBS = 8  # fewer left at the end go loose: a pack of a few saves little, costs a list
PACK_FORMAT = "autograph-pack/1"
PACK_SUFFIX = ".pack"
IDX_SUFFIX = ".idx"


@dataclass(frozen=True)
class PackedBlob:
    """Where a blob's stored bytes are: ``length`` bytes at ``offset`` in ``pack``."""

    pack: str
    offset: int
    length: int
    modified: datetime | None


def encode_index(pack: str, size: int, members: dict[str, tuple[int, int]]) -> bytes:
    """A pack's index: its name, size and ``{blob: [offset, length]}``."""
    body = {"format": PACK_FORMAT, "pack": pack, "size": size,
            "blobs": {key: list(span) for key, span in sorted(members.items())}}
    return json.dumps(body, separators=(",", ":")).encode()


def decode_index(data: bytes, where: str) -> tuple[str, dict[str, tuple[int, int]]]:
    """``(pack name, members)`` of a pack index. Raises IntegrityError when it is unreadable
    or names bytes outside its pack."""
    try:
        body = json.loads(data)
        if body.get("format") != PACK_FORMAT:
            raise ValueError(f"format {body.get('format')!r}")
        size = int(body["size"])
        members = {str(k): (int(v[0]), int(v[1])) for k, v in body["blobs"].items()}
        if any(o < 0 or n < 0 or o + n > size for o, n in members.values()):
            raise ValueError("a blob lies outside the pack")
        return str(body["pack"]), members
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise IntegrityError(f"pack index {where} is unreadable: {exc}") from None


class PackedBlobs:
    """A ``BackupStore`` of blobs over loose objects (``loose``) and packs (``packs``)."""

    tier = "s3"

    def __init__(self, loose: S3Store, packs: S3Store) -> None:
        self.loose, self.packs = loose, packs
        self._map: dict[str, PackedBlob] | None = None
        self._indexes: dict[tuple[str, int, datetime | None], dict[str, tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        return self.loose.describe()

    def writer(self, key: str) -> AbstractContextManager[Sink]:
        return self.loose.writer(key)

    def put(self, key: str, source: Path | BinaryIO, expected_sha256: str | None = None,
            progress: ByteProgress = None) -> StoredObject:
        return self.loose.put(key, source, expected_sha256, progress)

    def list(self, prefix: str = "") -> list[StoredObject]:
        """Loose and packed blobs (a blob in both is listed once); reads the packs' indexes
        afresh (an index seen before is not read again)."""
        found = {o.key: o for o in self.loose.list(prefix)}
        for key, where in self.refresh().items():
            if key.startswith(prefix) and key not in found:
                found[key] = StoredObject(key, where.length, where.modified)
        return [found[k] for k in sorted(found)]

    def stat(self, key: str) -> StoredObject:
        """A packed blob is confirmed by reading its pack's index again: a long-lived store
        (the outbox replicator's) must not trust a pack that pruning has since dropped."""
        where = self._packed().get(key)
        if where is not None:
            try:
                with self.packs.open(where.pack + IDX_SUFFIX) as handle:
                    members = decode_index(handle.read(), where.pack)[1]
            except (IntegrityError, NotFound):
                members = {}
            if members.get(key) == (where.offset, where.length):
                return StoredObject(key, where.length, where.modified)
            with self._lock:
                if self._map is not None:
                    self._map.pop(key, None)
        return self.loose.stat(key)

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """The blob's stored bytes (a packed one read with one ranged GET). Raises NotFound."""
        where = self._packed().get(key)
        if where is None:
            with self.loose.open(key) as handle:
                yield handle
            return
        yield io.BytesIO(self._read_range(key, where))

    def delete(self, key: str) -> None:
        self.loose.delete(key)
        self.delete_packed([key])

    def delete_packed(self, keys: Iterable[str]) -> int:
        """Drop ``keys`` from the packs holding them: each such pack's index is rewritten
        without them, or removed with its pack when it would name nothing. Returns how many
        packed blobs were dropped."""
        packed = self._packed()
        by_pack: dict[str, set[str]] = {}
        for key in keys:
            if key in packed:
                by_pack.setdefault(packed[key].pack, set()).add(key)
        for pack, dropped in by_pack.items():
            members = {k: (w.offset, w.length) for k, w in packed.items() if w.pack == pack}
            kept = {k: span for k, span in members.items() if k not in dropped}
            if kept:
                size = self.packs.stat(pack + PACK_SUFFIX).size
                self.packs.put(pack + IDX_SUFFIX, io.BytesIO(encode_index(pack, size, kept)))
            else:
                self.packs.delete(pack + IDX_SUFFIX)
                self.packs.delete(pack + PACK_SUFFIX)
            with self._lock:
                for key in dropped:
                    packed.pop(key, None)
        return sum(len(d) for d in by_pack.values())

    def collect_orphans(self) -> int:
        """Delete packs that have no index (a snapshot stopped between the two PUTs). Only
        under the snapshot lock: a snapshot being taken may be between them."""
        stored = {o.key for o in self.packs.list()}
        orphans = [k for k in stored if k.endswith(PACK_SUFFIX)
                   and k[: -len(PACK_SUFFIX)] + IDX_SUFFIX not in stored]
        for key in orphans:
            self.packs.delete(key)
        return len(orphans)

    def refresh(self) -> dict[str, PackedBlob]:
        """Read the packs' indexes (those not already read) into the map of packed blobs. An
        unreadable index hides its pack: its blobs count as missing. Raises DependencyDown."""
        fresh: dict[str, PackedBlob] = {}
        seen: set[tuple[str, int, datetime | None]] = set()
        for item in self.packs.list():
            if not item.key.endswith(IDX_SUFFIX):
                continue
            ident = (item.key, item.size, item.modified)
            seen.add(ident)
            members = self._indexes.get(ident)
            if members is None:
                try:
                    with self.packs.open(item.key) as handle:
                        name, members = decode_index(handle.read(), item.key)
                except (IntegrityError, NotFound):
                    continue
                if name + IDX_SUFFIX != item.key:
                    continue
                self._indexes[ident] = members
            pack = item.key[: -len(IDX_SUFFIX)]
            for key, (offset, length) in members.items():
                fresh.setdefault(key, PackedBlob(pack, offset, length, item.modified))
        with self._lock:
            self._indexes = {k: v for k, v in self._indexes.items() if k in seen}
            self._map = fresh
        return fresh

    def remember(self, pack: str, members: dict[str, tuple[int, int]]) -> None:
        """Record a pack this process just committed (no need to list it again)."""
        with self._lock:
            if self._map is not None:
                for key, (offset, length) in members.items():
                    self._map.setdefault(key, PackedBlob(pack, offset, length, None))

    def _packed(self) -> dict[str, PackedBlob]:
        return self._map if self._map is not None else self.refresh()

    def _read_range(self, key: str, where: PackedBlob) -> bytes:
        full = self.packs.full_key(where.pack + PACK_SUFFIX)
        last = where.offset + where.length - 1
        try:
            if where.length == 0:
                return b""
            body = self.packs.client.get_object(Bucket=self.packs.bucket, Key=full,
                                                Range=f"bytes={where.offset}-{last}")["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
        except (BotoCoreError, ClientError) as exc:
            raise s3_error(exc, f"s3://{self.packs.bucket}/{full}") from None
        if len(data) != where.length:
            raise IntegrityError(f"{key}: read {len(data)} of {where.length} bytes from "
                                 f"pack {where.pack[:12]}…")
        return data


class PackBuilder:
    """Gathers small blobs into packs and sends each full pack (the pack, then its index)
    through ``client``, the lean SigV4 client. Thread-safe: the worker whose blob fills a
    pack sends it, while the others keep gathering into the next."""

    def __init__(self, store: PackedBlobs, client: S3Client, limit: int = PACK_BYTES) -> None:
        self._store, self._client, self._limit = store, client, limit
        self._lock = threading.Lock()
        self._parts: list[bytes] = []
        self._members: dict[str, tuple[int, int]] = {}
        self._size = 0
        self.error: AutographError | None = None  # the last failed send's

    def add(self, key: str, data: bytes) -> list[str] | None:
        """Append a blob; when that fills the pack, send it. Returns the blobs whose pack
        could not be sent (they are not stored), else None."""
        with self._lock:
            if key in self._members:
                return None
            self._members[key] = (self._size, len(data))
            self._parts.append(data)
            self._size += len(data)
            if self._size < self._limit:
                return None
            full = self._take()
        return self._send(*full)

    def flush(self) -> list[str] | None:
        """Send what is gathered: as a pack, or loose when under PACK_MIN_BLOBS (an
        incremental snapshot's few changes should not leave a pack index to read on every
        listing). The same answer as :meth:`add`."""
        with self._lock:
            parts, members = self._take()
        if len(members) >= PACK_MIN_BLOBS:
            return self._send(parts, members)
        lost = []
        loose = self._store.loose
        for (key, _span), data in zip(members.items(), parts, strict=True):
            try:
                self._client.put_object(loose.bucket, loose.full_key(key), data,
                                        sha256=hashlib.sha256(data).hexdigest())
            except AutographError as exc:
                self.error = exc
                lost.append(key)
        return lost or None

    def _take(self) -> tuple[list[bytes], dict[str, tuple[int, int]]]:
        parts, members = self._parts, self._members
        self._parts, self._members, self._size = [], {}, 0
        return parts, members

    def _send(self, parts: list[bytes], members: dict[str, tuple[int, int]]
              ) -> list[str] | None:
        data = b"".join(parts)
        name = hashlib.sha256(data).hexdigest()
        index = encode_index(name, len(data), members)
        packs = self._store.packs
        try:
            self._client.put_object(packs.bucket, packs.full_key(name + PACK_SUFFIX), data,
                                    sha256=name)
            self._client.put_object(packs.bucket, packs.full_key(name + IDX_SUFFIX), index,
                                    sha256=hashlib.sha256(index).hexdigest())
        except AutographError as exc:
            self.error = exc
            return sorted(members)
        self._store.remember(name, members)
        return None
