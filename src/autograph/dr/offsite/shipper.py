"""The off-site shipper: a stack component that keeps the off-site tier caught up.

Why a component of its own (``python -m autograph.dr.offsite.shipper``, supervised like
``walstream``) and not a thread of the gateway: WAL must keep leaving the machine while the
gateway restarts, is upgraded or is down, and a slow upload must never hold a request worker.
supervisord restarts it if it dies; its heartbeat file is its health.

Every ``AUTOGRAPH_OFFSITE_WAL_POLL_SECONDS`` (1 s) it ships completed WAL segments
(:class:`~autograph.dr.offsite.wal.WalShipper`); every ``AUTOGRAPH_OFFSITE_SYNC_INTERVAL_SECONDS``
(60 s) it ships the backlog of every catalog kind and of the snapshots, and removes off-site
WAL no off-site base backup needs. After each pass it writes ``BACKUPS/offsite/shipper.json``
(:class:`ShipperStatus`), which ``dr status``, ``/metrics`` and the monitor read.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from autograph.clock import utc_now
from autograph.config import Settings, load_settings
from autograph.dr.models import KINDS, ShipReport
from autograph.dr.offsite.ship import ship_backlog
from autograph.dr.offsite.wal import SEGMENT, FolderState, SegmentCloser, WalShipper, wal_root
from autograph.dr.storage.offsite import ensure_offsite_bucket, offsite_client, offsite_key
from autograph.errors import AutographError


class ShipperStatus(BaseModel):
    """The shipper's last word: written after every pass."""

    checked_at: datetime
    pid: int
    reachable: bool
    error: str | None = None
    wal: list[FolderState] = Field(default_factory=list)
    last_sync_at: datetime | None = None
    backlog: dict[str, ShipReport] = Field(default_factory=dict)


def status_path(settings: Settings) -> Path:
    """Where the shipper writes its status (beside the local backups)."""
    return settings.backups_dir / "offsite" / "shipper.json"


def read_status(settings: Settings) -> ShipperStatus | None:
    """The shipper's last status, or None when it never ran (or the file is unreadable)."""
    try:
        return ShipperStatus.model_validate_json(status_path(settings).read_bytes())
    except (OSError, ValueError):
        return None


def _write_status(settings: Settings, status: ShipperStatus) -> None:
    path = status_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_text(status.model_dump_json(indent=2))
    temp.replace(path)


def probe(client: Any, bucket: str) -> str | None:
    """None when the off-site bucket answers, else why not."""
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as exc:  # botocore raises many types; all mean "not usable now"
        return f"off-site store unreachable ({type(exc).__name__})"
    return None


def sync_backlog(settings: Settings) -> dict[str, ShipReport]:
    """Ship the backlog of every catalog kind and of the snapshots; prune off-site WAL."""
    from autograph.dr.buckets.snapshots.store import SnapshotStore, ship_snapshots
    from autograph.dr.catalog import open_catalog

    reports: dict[str, ShipReport] = {}
    for kind in KINDS:
        catalog = open_catalog(settings, None, kind)
        reports[kind] = ship_backlog(catalog)
        if kind == "basebackup" and reports[kind].unreachable is None:
            with contextlib.suppress(AutographError):
                prune_offsite_wal(settings, catalog)
    reports["snapshots"] = ship_snapshots(SnapshotStore(settings, None))
    return reports


def prune_offsite_wal(settings: Settings, catalog: Any) -> list[str]:
    """Remove off-site WAL older than the oldest off-site base backup's start segment, per
    cluster (the local rule of ``prune_wal``, applied to the off-site tier)."""
    listing = catalog.list(("offsite",))
    if listing.unreachable or listing.problems or not listing.backups:
        return []
    oldest: dict[str, str] = {}
    for entry in listing.backups:
        sysid, start = entry.extra.get("system_identifier"), entry.extra.get("start_wal_file")
        if isinstance(sysid, str) and isinstance(start, str):
            oldest[sysid] = min(oldest.get(sysid, start[8:]), start[8:])
    shipper = WalShipper(settings)
    removed: list[str] = []
    for sysid, first in oldest.items():
        store = shipper.store(sysid)
        for item in store.list():
            if SEGMENT.match(item.key) and item.key[8:] < first:
                store.delete(item.key)
                removed.append(f"{sysid}/{item.key}")
    return removed


def switch_wal(settings: Settings) -> None:
    """``SELECT pg_switch_wal()`` on the stack's server (password from HOME/secrets)."""
    import psycopg

    from autograph.connections import pg_kwargs
    from autograph.secrets import load_credentials

    creds = load_credentials(settings)
    with psycopg.connect(**pg_kwargs(settings, creds, "postgres", connect_timeout=3)) as conn:
        conn.execute("SELECT pg_switch_wal()")


def run(settings: Settings, *, passes: int | None = None) -> None:
    """The shipper loop (``passes``: stop after that many WAL passes, for tests)."""
    offsite_key(settings)  # generated at first start, before anything needs it
    client = offsite_client(settings)
    ensure_offsite_bucket(settings, client)
    shipper = WalShipper(settings, client)
    closer = SegmentCloser(lambda: switch_wal(settings), settings.wal_switch_seconds)
    last_sync = 0.0
    status = read_status(settings)
    backlog = status.backlog if status else {}
    last_sync_at = status.last_sync_at if status else None
    done = 0
    while passes is None or done < passes:
        began = time.monotonic()
        root = wal_root(settings)
        for folder in (p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
            closer.check(folder, time.time())
        error = probe(client, settings.offsite_s3_bucket)
        folders = shipper.ship_all(ship=error is None)
        if error is None and began - last_sync >= settings.offsite_sync_interval_seconds:
            backlog, last_sync, last_sync_at = sync_backlog(settings), began, utc_now()
        _write_status(settings, ShipperStatus(
            checked_at=utc_now(), pid=os.getpid(), reachable=error is None, error=error,
            wal=folders, last_sync_at=last_sync_at, backlog=backlog))
        done += 1
        time.sleep(max(0.0, settings.offsite_wal_poll_seconds - (time.monotonic() - began)))


def main() -> None:
    """Entry point of the stack component."""
    settings = load_settings()
    try:
        run(settings)
    except AutographError as exc:
        print(f"offsite shipper: {exc.message}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
