"""Where incremental bucket snapshots live (SPEC §7): indexes and content-addressed blobs.

A snapshot is an index (gzipped JSON) naming every object of one bucket at one moment, each
with its key, size, etag, content type, user metadata and the sha256 of its bytes. The bytes
are stored once per distinct content as a blob named by that sha256 (``<sha256>.z`` when zlib
shrinks them by a tenth or more), so a snapshot stores only what changed since the previous
one. Both tiers hold both: ``BACKUPS/snapshots/{index,blobs}/`` on local disk and
``snapshots/{index,blobs,packs}/`` in the ``minio-backups`` bucket (small blobs travel there in
packs, :mod:`.packs`). The index is
written last (the commit point): an index names only blobs that were stored before it.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autograph.clock import isoformat
from autograph.config import Settings
from autograph.dr.buckets.snapshots.packs import PackedBlobs
from autograph.dr.models import ShipReport, Tier
from autograph.dr.storage import BackupStore
from autograph.dr.storage.local import LocalStore
from autograph.dr.storage.offsite import offsite_client, offsite_enabled, open_offsite
from autograph.dr.storage.s3 import S3Store
from autograph.errors import (
    AutographError,
    ConfigError,
    DependencyDown,
    IntegrityError,
    InvalidInput,
    NotFound,
)
from autograph.secrets import Credentials

FORMAT = "autograph-snapshot/1"
COMPRESSED_SUFFIX = ".z"
INDEX_SUFFIX = ".snapshot.json.gz"
_NAME = re.compile(r"^snap_([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])_(\d{8}T\d{9})Z$")
_STAMP = "%Y%m%dT%H%M%S"


@dataclass(frozen=True, slots=True)
class SnapshotObject:
    """One object as a snapshot recorded it (its bytes are the blob ``sha256``)."""

    key: str
    size: int
    etag: str
    last_modified: str
    content_type: str
    metadata: dict[str, str]
    sha256: str
    blob: str = ""  # the stored blob's key: ``<sha256>``, or ``<sha256>.z`` (zlib-compressed)
    stored_size: int = -1  # the blob's size (-1: the object's, stored as it is)

    @property
    def blob_key(self) -> str:
        return self.blob or self.sha256

    @property
    def blob_size(self) -> int:
        return self.stored_size if self.stored_size >= 0 else self.size

    @property
    def compressed(self) -> bool:
        return self.blob_key.endswith(COMPRESSED_SUFFIX)


_RECORD_FIELDS = tuple(f.name for f in fields(SnapshotObject))


@dataclass
class Snapshot:
    """A bucket's full state at ``started_at`` (the listing began then)."""

    name: str
    bucket: str
    started_at: datetime
    finished_at: datetime
    objects: list[SnapshotObject]
    parent: str | None = None
    new_blobs: int = 0
    new_bytes: int = 0
    vanished: list[str] = field(default_factory=list)
    shrunk: str | None = None  # why it looks like a mass deletion (None: it does not)
    baseline: str | None = None  # the last snapshot not flagged, while flagged
    baseline_objects: int = 0

    @property
    def size(self) -> int:
        return sum(o.size for o in self.objects)

    def summary(self) -> dict[str, Any]:
        """Everything but the object list (for listings and reports)."""
        return {"name": self.name, "bucket": self.bucket,
                "started_at": isoformat(self.started_at),
                "finished_at": isoformat(self.finished_at), "objects": len(self.objects),
                "size": self.size, "parent": self.parent, "new_blobs": self.new_blobs,
                "new_bytes": self.new_bytes, "vanished": len(self.vanished),
                "shrunk": self.shrunk, "baseline": self.baseline,
                "baseline_objects": self.baseline_objects}

    def encode(self) -> bytes:
        body = {**self.summary(), "format": FORMAT, "vanished": self.vanished,
                "objects": [{name: getattr(o, name) for name in _RECORD_FIELDS}
                            for o in self.objects]}  # not asdict: it deep-copies each record
        return gzip.compress(json.dumps(body, separators=(",", ":")).encode(), 6, mtime=0)

    @classmethod
    def decode(cls, data: bytes, where: str) -> Snapshot:
        """Raises IntegrityError for an unreadable or foreign index."""
        try:
            body = json.loads(gzip.decompress(data))
            if body.get("format") != FORMAT:
                raise ValueError(f"format {body.get('format')!r}")
            return cls(name=body["name"], bucket=body["bucket"],
                       started_at=_parse(body["started_at"]),
                       finished_at=_parse(body["finished_at"]),
                       objects=[SnapshotObject(**o) for o in body["objects"]],
                       parent=body.get("parent"), new_blobs=body.get("new_blobs", 0),
                       new_bytes=body.get("new_bytes", 0), vanished=body.get("vanished", []),
                       shrunk=body.get("shrunk"), baseline=body.get("baseline"),
                       baseline_objects=body.get("baseline_objects", 0))
        except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"snapshot index {where} is unreadable: {exc}") from None


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def snapshot_name(bucket: str, moment: datetime) -> str:
    """``snap_<bucket>_<YYYYMMDDTHHMMSSmmm>Z`` (UTC, milliseconds)."""
    moment = moment.astimezone(UTC)
    return f"snap_{bucket}_{moment:{_STAMP}}{moment.microsecond // 1000:03d}Z"


def parse_name(name: str) -> tuple[str, datetime]:
    """``(bucket, start time)`` of a snapshot name. Raises InvalidInput for anything else."""
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise InvalidInput(f"invalid snapshot name {str(name)[:80]!r}: expected "
                           "snap_<bucket>_<YYYYMMDDTHHMMSSmmm>Z")
    stamp = match.group(2)
    try:
        moment = datetime.strptime(stamp[:15], _STAMP).replace(
            microsecond=int(stamp[15:]) * 1000, tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"invalid snapshot name {name[:80]!r}: {stamp} is not a "
                           "real UTC time") from None
    return match.group(1), moment


@dataclass
class TierStores:
    """One tier's index and blob stores (``name``: which tier, as the catalog names tiers)."""

    name: Tier
    index: BackupStore
    blobs: BackupStore


class SnapshotStore:
    """Snapshot indexes and blobs over the local tier and (optionally) the S3 tier."""

    def __init__(self, settings: Settings, creds: Credentials | None, *,
                 with_s3: bool = True, with_offsite: bool = True) -> None:
        root = settings.backups_dir / "snapshots"
        self.local = TierStores("local", LocalStore(root / "index"), LocalStore(root / "blobs"))
        self.remote: TierStores | None = None
        if with_s3 and creds is not None:
            from autograph.s3.boto import backup_client

            client = backup_client(settings, creds, connect_timeout=3.0, read_timeout=60.0,
                                   retries=2)
            bucket = settings.backup_bucket_objects
            self.remote = TierStores("s3", S3Store(client, bucket, "snapshots/index/"),
                               PackedBlobs(S3Store(client, bucket, "snapshots/blobs/"),
                                           S3Store(client, bucket, "snapshots/packs/")))
        self.offsite: TierStores | None = None
        if with_offsite and offsite_enabled(settings):
            client = offsite_client(settings)
            index, blobs = (open_offsite(settings, f"snapshots/{area}", client)
                            for area in ("index", "blobs"))
            assert index is not None and blobs is not None
            self.offsite = TierStores("offsite", index, blobs)

    def tiers(self) -> list[TierStores]:
        return ([self.local] + ([self.remote] if self.remote else [])
                + ([self.offsite] if self.offsite else []))

    @property
    def blobs_dir(self) -> Path:
        """The local folder of the blobs."""
        assert isinstance(self.local.blobs, LocalStore)
        return self.local.blobs.root

    def blob_path(self, key: str) -> Path:
        """The local file of a blob (it may not exist)."""
        assert isinstance(self.local.blobs, LocalStore)
        return self.local.blobs.path(key)

    def names(self, bucket: str | None = None) -> tuple[dict[str, list[str]], dict[str, str]]:
        """Committed snapshot names per tier (oldest first), and the tiers that could not be
        listed with why. ``bucket`` keeps only that bucket's snapshots."""
        prefix = f"snap_{bucket}_" if bucket else "snap_"
        found: dict[str, list[str]] = {}
        unreachable: dict[str, str] = {}
        for tier in self.tiers():
            try:
                keys = [o.key for o in tier.index.list(prefix)]
            except (DependencyDown, NotFound) as exc:
                unreachable[tier.name] = exc.message
                continue
            found[tier.name] = sorted(k[: -len(INDEX_SUFFIX)] for k in keys
                                      if k.endswith(INDEX_SUFFIX) and _valid(k))
        return found, unreachable

    def all_names(self, bucket: str | None = None) -> list[str]:
        """Snapshot names in any reachable tier, oldest first (by time, then name)."""
        return merged(self.names(bucket)[0])

    def load(self, name: str) -> tuple[Snapshot, str]:
        """A snapshot's index from the first tier that has a readable copy, and that tier.

        Raises InvalidInput (bad name), NotFound, IntegrityError (no readable copy),
        DependencyDown (not local, and S3 unreachable)."""
        parse_name(name)
        problems: list[str] = []
        down: DependencyDown | None = None
        for tier in self.tiers():
            try:
                with tier.index.open(name + INDEX_SUFFIX) as handle:
                    data = handle.read()
                snapshot = Snapshot.decode(data, f"{name} ({tier.name})")
            except NotFound:
                continue
            except DependencyDown as exc:
                down = exc
                continue
            except (IntegrityError, ConfigError) as exc:  # off-site: damaged, or key not held
                problems.append(exc.message)
                continue
            if snapshot.name != name:
                problems.append(f"{tier.name} copy of {name} names {snapshot.name}")
                continue
            return snapshot, tier.name
        if problems:
            raise IntegrityError("; ".join(problems))
        if down is not None:
            raise down
        raise NotFound(f"no snapshot named {name}")

    def delete(self, name: str) -> None:
        """Remove a snapshot's index from every reachable tier (blobs go with ``collect``)."""
        parse_name(name)
        for tier in self.tiers():
            try:
                tier.index.delete(name + INDEX_SUFFIX)
            except NotFound:
                continue


def merged(per_tier: dict[str, list[str]], bucket: str | None = None) -> list[str]:
    """The names of :meth:`SnapshotStore.names` across tiers (only ``bucket``'s, when given),
    oldest first (by time, then name): one listing serves several questions."""
    found = {n for names in per_tier.values() for n in names
             if bucket is None or parse_name(n)[0] == bucket}
    return sorted(found, key=lambda n: (parse_name(n)[1], n))


def _valid(key: str) -> bool:
    try:
        parse_name(key[: -len(INDEX_SUFFIX)])
    except InvalidInput:
        return False
    return True


def ship_snapshots(store: SnapshotStore) -> ShipReport:
    """Copy every local snapshot missing off-site: its missing blobs, then its index."""
    report = ShipReport(area="snapshots")
    offsite = store.offsite
    if offsite is None:
        return report
    try:
        indexes = {o.key for o in offsite.index.list()}
        blobs = {o.key for o in offsite.blobs.list()}
    except DependencyDown as exc:
        report.unreachable = exc.message
        return report
    local = sorted(o.key for o in store.local.index.list() if o.key.endswith(INDEX_SUFFIX))
    for key in [k for k in local if k not in indexes]:
        name = key[: -len(INDEX_SUFFIX)]
        try:
            with store.local.index.open(key) as handle:
                data = handle.read()
            snapshot = Snapshot.decode(data, name)
            for record in snapshot.objects:
                if record.blob_key not in blobs:
                    offsite.blobs.put(record.blob_key, store.blob_path(record.blob_key),
                                      expected_sha256=None if record.compressed
                                      else record.sha256)
                    blobs.add(record.blob_key)
            offsite.index.put(key, io.BytesIO(data))
        except AutographError as exc:
            report.failed[name] = exc.message
            if isinstance(exc, DependencyDown):
                report.unreachable = exc.message
                break
            continue
        report.shipped.append(name)
    report.backlog = [k[: -len(INDEX_SUFFIX)] for k in local
                      if k not in indexes and k[: -len(INDEX_SUFFIX)] not in report.shipped]
    return report
