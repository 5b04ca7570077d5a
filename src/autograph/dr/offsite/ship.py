"""Copying committed backups off-site, and the backlog of those not there yet.

The local manifest is the commit point; the off-site copy follows it. ``ship_one`` sends the
artifact (encrypted on the way, its plaintext sha256 checked against the manifest before the
upload is completed) and then the manifest with ``extra.offsite`` recorded: an off-site manifest
always names a complete artifact. There is no queue file: the *backlog* is what the tiers say,
the local manifests without an off-site twin, so it survives crashes and restarts and is
shipped, oldest first, by :func:`ship_backlog` (called by the off-site shipper every
``AUTOGRAPH_OFFSITE_SYNC_INTERVAL_SECONDS`` and by ``autograph backup offsite sync``).

Snapshots go the same way: the blobs an index needs that are not off-site yet, then the index.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from autograph.clock import isoformat, utc_now
from autograph.dr.models import MANIFEST_SUFFIX, Manifest, manifest_key
from autograph.dr.storage import CHUNK
from autograph.errors import AutographError, DependencyDown, IntegrityError

if TYPE_CHECKING:
    from autograph.dr.buckets.snapshots.store import SnapshotStore
    from autograph.dr.catalog import Catalog


class ShipReport(BaseModel):
    """What one pass over a backlog did."""

    area: str
    shipped: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)
    backlog: list[str] = Field(default_factory=list, description="still not off-site")
    oldest_backlog_at: datetime | None = None
    unreachable: str | None = None


def ship_one(catalog: Catalog, manifest: Manifest) -> AutographError | None:
    """Copy one committed backup off-site: artifact first, manifest last.

    Returns None when both are stored, else the error saying why not (the backup stays in the
    backlog; a partial upload is aborted, so nothing appears under the key). Never raises for
    off-site trouble: the local backup stands.
    """
    store = catalog.offsite
    if store is None:
        return DependencyDown("no off-site tier configured")
    try:
        with store.writer(manifest.artifact) as sink, \
                catalog.local.open(manifest.artifact) as source:
            while chunk := source.read(CHUNK):
                sink.write(chunk)
            if sink.hexdigest() != manifest.sha256:
                raise IntegrityError(f"local {manifest.artifact} no longer matches its manifest")
        record = {"key_id": store.key_id, "ciphertext_sha256": sink.ciphertext_sha256,
                  "shipped_at": isoformat(utc_now())}
        shipped = manifest.model_copy(update={"extra": {**manifest.extra, "offsite": record}})
        store.put(manifest_key(manifest.name),
                  io.BytesIO(shipped.model_dump_json(indent=2).encode()))
    except AutographError as exc:
        return exc
    return None


def backlog(catalog: Catalog) -> list[Manifest]:
    """Local backups with no off-site manifest, oldest first.

    Raises DependencyDown when the off-site store cannot be listed.
    """
    if catalog.offsite is None:
        return []
    there = {o.key for o in catalog.offsite.list() if o.key.endswith(MANIFEST_SUFFIX)}
    waiting: list[Manifest] = []
    for item in catalog.local.list():
        if not item.key.endswith(MANIFEST_SUFFIX) or item.key in there:
            continue
        try:
            with catalog.local.open(item.key) as stream:
                waiting.append(Manifest.model_validate_json(stream.read()))
        except (AutographError, ValueError):
            continue  # unreadable local manifests are the catalog's problems, not shippable
    return sorted(waiting, key=lambda m: (m.created_at, m.name))


def ship_backlog(catalog: Catalog) -> ShipReport:
    """Ship every backup of the backlog, oldest first; stop at the first unreachable store."""
    report = ShipReport(area=catalog.kind)
    try:
        waiting = backlog(catalog)
    except DependencyDown as exc:
        report.unreachable = exc.message
        return report
    for index, manifest in enumerate(waiting):
        error = ship_one(catalog, manifest)
        if error is None:
            report.shipped.append(manifest.name)
            continue
        report.failed[manifest.name] = error.message
        if isinstance(error, DependencyDown):
            report.unreachable = error.message
            report.backlog = [m.name for m in waiting[index:]]
            report.oldest_backlog_at = waiting[index].finished_at
            return report
    left = [m for m in waiting if m.name in report.failed]
    report.backlog = [m.name for m in left]
    report.oldest_backlog_at = left[0].finished_at if left else None
    return report


def ship_snapshots(store: SnapshotStore) -> ShipReport:
    """Copy every local snapshot missing off-site: its missing blobs, then its index."""
    from autograph.dr.buckets.snapshots.store import INDEX_SUFFIX, Snapshot

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
