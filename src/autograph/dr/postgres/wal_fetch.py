"""The WAL a point-in-time recovery needs when the machine that streamed it is gone.

``pg_receivewal`` writes WAL on the machine it protects; the off-site tier ships each completed
segment (:mod:`autograph.dr.offsite.wal`). When the cluster's local WAL folder is missing or
empty (the machine was lost), the recovery fetches that chain back from the off-site store,
decrypted and authenticated, up to its first gap or damaged segment: replay can go that far
and no further, and the recovery says where it stopped and why.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from autograph.config import Settings
from autograph.dr.postgres.walstream import wal_root


@dataclass(frozen=True)
class FetchedWal:
    """WAL fetched from the off-site store for one cluster."""

    folder: Path | None
    segments: int = 0
    stopped: str | None = None   # why the chain ended before its last segment, if it did


def fetch_offsite_wal(settings: Settings, sysid: str) -> FetchedWal:
    """Fetch ``wal/<sysid>/`` from the off-site tier into ``BACKUPS/wal-offsite/<sysid>``
    when the local folder of that cluster is missing or empty; else nothing.

    Raises DependencyDown when the off-site store is unreachable.
    """
    from autograph.dr.offsite.wal import fetch_wal
    from autograph.dr.storage.offsite import offsite_enabled, open_offsite

    local = wal_root(settings) / sysid
    if not offsite_enabled(settings) or (local.is_dir() and any(local.iterdir())):
        return FetchedWal(None)
    store = open_offsite(settings, f"wal/{sysid}")
    if store is None:
        return FetchedWal(None)
    target = settings.backups_dir / "wal-offsite" / sysid
    shutil.rmtree(target, ignore_errors=True)
    report = fetch_wal(store, sysid, target)
    stopped = (f"the off-site WAL chain ends early at {report.stopped_at} ({report.reason})"
               if report.stopped_at else None)
    return FetchedWal(target, len(report.fetched), stopped)
