"""How far behind the off-site tier is: per kind, and for WAL; what ``dr status``, ``/metrics``
and the monitor's ``offsite_lag`` / ``offsite_unreachable`` alerts read.

Lag is measured from the local side, so it is honest while the store is down: for a catalog
kind, the age of the oldest local backup with no off-site copy (0 when none waits); for WAL,
the age of the oldest completed segment past the shipper's watermark (the segment's completion
time is its mtime). The backlog is computed live from both tiers; the WAL watermark comes from
the shipper's status file (no status: nothing is known to be off-site).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from autograph.clock import utc_now
from autograph.config import Settings
from autograph.dr.models import KINDS, MANIFEST_SUFFIX, Kind
from autograph.dr.offsite.shipper import read_status
from autograph.dr.offsite.wal import completed, wal_root
from autograph.dr.storage.offsite import offsite_enabled, offsite_key
from autograph.errors import AutographError

if TYPE_CHECKING:
    from autograph.dr.catalog import Catalog


class KindLag(BaseModel):
    """One kind's off-site state (``database``, ``bucket``, ``basebackup``, ``snapshots``,
    ``wal``)."""

    kind: str
    lag_seconds: float | None = Field(description="age of the oldest copy waiting (0: none; "
                                                  "None: unknown, the store is unreachable)")
    backlog: int | None = None
    newest_offsite: str | None = None
    newest_offsite_at: datetime | None = None


class OffsiteStatus(BaseModel):
    """The off-site tier as a whole."""

    endpoint: str
    bucket: str
    encryption: bool
    key_id: str | None = None
    reachable: bool
    error: str | None = None
    shipper_running: bool = Field(description="the shipper wrote its status recently")
    shipper_checked_at: datetime | None = None
    kinds: list[KindLag] = Field(default_factory=list)
    max_lag_seconds: float | None = None
    rpo_target_seconds: int
    problems: list[str] = Field(default_factory=list)


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def catalog_lag(catalog: Catalog, now: float) -> KindLag:
    """Backlog and lag of one catalog kind (raises DependencyDown when off-site is down)."""
    assert catalog.offsite is not None
    there = {o.key: o for o in catalog.offsite.list() if o.key.endswith(MANIFEST_SUFFIX)}
    local = [o for o in catalog.local.list() if o.key.endswith(MANIFEST_SUFFIX)]
    waiting = [o.modified.timestamp() for o in local if o.key not in there and o.modified]
    newest = max(there.values(), key=lambda o: (o.modified or _at(0), o.key), default=None)
    return KindLag(kind=catalog.kind, lag_seconds=round(now - min(waiting), 1) if waiting else 0.0,
                   backlog=len(waiting),
                   newest_offsite=newest.key[: -len(MANIFEST_SUFFIX)] if newest else None,
                   newest_offsite_at=newest.modified if newest else None)


def wal_lag(settings: Settings, now: float) -> KindLag:
    """The WAL's lag from local files and the shipper's watermark (never asks the store)."""
    status = read_status(settings)
    marks = {f.folder: f for f in status.wal} if status else {}
    root = wal_root(settings)
    oldest: float | None = None
    waiting = 0
    newest: tuple[str, float] | None = None
    for folder in (p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        mark = marks.get(folder.name)
        watermark = mark.watermark if mark else None
        for path in completed(folder):
            if watermark is None or path.name > watermark:
                waiting += 1
                mtime = path.stat().st_mtime
                oldest = mtime if oldest is None else min(oldest, mtime)
        if mark and mark.watermark and mark.watermark_mtime and (
                newest is None or mark.watermark_mtime > newest[1]):
            newest = (f"{folder.name}/{mark.watermark}", mark.watermark_mtime)
    return KindLag(kind="wal", lag_seconds=round(max(0.0, now - oldest), 1) if oldest else 0.0,
                   backlog=waiting, newest_offsite=newest[0] if newest else None,
                   newest_offsite_at=_at(newest[1]) if newest else None)


def offsite_status(settings: Settings, catalogs: Mapping[Kind, Catalog] | None = None
                   ) -> OffsiteStatus | None:
    """The off-site tier's status now; None when no off-site tier is configured."""
    from autograph.dr.buckets.snapshots.store import INDEX_SUFFIX, SnapshotStore
    from autograph.dr.catalog import open_catalog

    if not offsite_enabled(settings):
        return None
    now = time.time()
    shipper = read_status(settings)
    running = shipper is not None and (utc_now() - shipper.checked_at).total_seconds() < max(
        10.0, 5 * settings.offsite_wal_poll_seconds)
    key = offsite_key(settings)
    status = OffsiteStatus(
        endpoint=str(settings.offsite_s3_endpoint), bucket=settings.offsite_s3_bucket,
        encryption=settings.offsite_encryption, key_id=key.key_id if key else None,
        reachable=True, shipper_running=running,
        shipper_checked_at=shipper.checked_at if shipper else None,
        rpo_target_seconds=settings.rpo_target_seconds)
    for kind in KINDS:
        catalog = (catalogs or {}).get(kind) or open_catalog(settings, None, kind)
        try:
            status.kinds.append(catalog_lag(catalog, now))
        except AutographError as exc:
            status.reachable, status.error = False, exc.message
            status.kinds.append(KindLag(kind=kind, lag_seconds=None))
    snapshots = SnapshotStore(settings, None, with_s3=False)
    if snapshots.offsite is not None and status.reachable:
        try:
            there = {o.key for o in snapshots.offsite.index.list()}
            local = [o for o in snapshots.local.index.list()
                     if o.key.endswith(INDEX_SUFFIX) and o.key not in there and o.modified]
            status.kinds.append(KindLag(
                kind="snapshots", backlog=len(local),
                lag_seconds=round(now - min(o.modified.timestamp() for o in local if o.modified),
                                  1) if local else 0.0))
        except AutographError as exc:
            status.reachable, status.error = False, exc.message
    status.kinds.append(wal_lag(settings, now))
    known = [k.lag_seconds for k in status.kinds if k.lag_seconds is not None]
    status.max_lag_seconds = max(known, default=None)
    if not status.reachable:
        status.problems.append(f"off-site store unreachable: {status.error}")
    if not running:
        status.problems.append("the off-site shipper is not running (no recent status)")
    for lag in status.kinds:
        if lag.lag_seconds is not None and lag.lag_seconds > settings.rpo_target_seconds:
            status.problems.append(f"off-site {lag.kind} lags {lag.lag_seconds:.0f} s "
                                   f"(RPO target {settings.rpo_target_seconds} s)")
    return status
