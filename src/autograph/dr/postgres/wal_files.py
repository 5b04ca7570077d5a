"""The streamed WAL on disk (``BACKUPS/wal/<cluster id>/``, with the folders retired by earlier
recoveries beside it): the folders of a cluster, staging its segments for a replay, pruning
what no base backup needs, and a summary per folder."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

from autograph.config import Settings
from autograph.dr.catalog import Catalog
from autograph.dr.postgres.data_folder import chown_tree
from autograph.dr.postgres.walstream import wal_root

SEGMENT = re.compile(r"^[0-9A-F]{24}$")


def wal_sources(settings: Settings, sysid: str) -> list[Path]:
    """The WAL folders of a cluster, oldest first: those retired by earlier recoveries
    (``<sysid>.pre_pitr_<stamp>``), then the live one."""
    root = wal_root(settings)
    retired = sorted(root.glob(f"{sysid}.pre_pitr_*")) if root.is_dir() else []
    return [*retired, root / sysid]


def retire_wal_folder(folder: Path, stamp: str) -> None:
    """After a recovery the cluster continues on a new timeline from the replayed point; the
    receiver starts a fresh folder (and slot) there, the old WAL is kept beside it."""
    if folder.is_dir():
        folder.rename(folder.with_name(f"{folder.name}.pre_pitr_{stamp}"))


def wait_receiver_idle(folder: Path, quiet: float = 1.0, limit: float = 15.0) -> None:
    """Wait until the streamed WAL stops changing (the receiver has what the server sent)."""
    def state() -> list[tuple[str, int]]:
        if not folder.is_dir():
            return []
        return sorted((p.name, p.stat().st_size) for p in folder.iterdir())

    deadline = time.monotonic() + limit
    last = state()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = state()
        if now == last:
            return
        last = now


def stage_wal(sources: list[Path], pg_wal: Path, user: str | None) -> list[str]:
    """Copy every streamed segment (a ``.partial`` one under its full name, unless the
    complete one exists) into ``pg_wal``; later folders win. Returns the names staged."""
    chosen: dict[str, Path] = {}
    for source in sources:
        if not source.is_dir():
            continue
        for path in sorted(source.iterdir()):
            name = path.name.removesuffix(".partial")
            if not (SEGMENT.match(name) or name.endswith(".history")):
                continue
            if path.name.endswith(".partial") and (source / name).exists():
                continue
            chosen[name] = path
    if not chosen:
        return []
    pg_wal.mkdir(exist_ok=True)
    for name, path in chosen.items():
        shutil.copyfile(path, pg_wal / name)
    chown_tree(pg_wal, user)
    return sorted(chosen)


def prune_wal(settings: Settings, catalog: Catalog) -> list[str]:
    """Remove streamed WAL no base backup needs any more; return the files removed.

    Per cluster folder, segments older than the oldest listed base backup's start segment
    go. A folder whose cluster has no base backup is left alone (nothing can say it is
    unneeded), and so is everything when the catalog cannot be read in full.
    """
    listing = catalog.list()
    if listing.unreachable or listing.problems:
        return []
    oldest: dict[str, str] = {}
    for entry in listing.backups:
        sysid, start = entry.extra.get("system_identifier"), entry.extra.get("start_wal_file")
        if isinstance(sysid, str) and isinstance(start, str):
            key = start[8:]
            if sysid not in oldest or key < oldest[sysid]:
                oldest[sysid] = key
    removed: list[str] = []
    for sysid, first_needed in oldest.items():
        for folder in wal_sources(settings, sysid):  # retired folders too, then the live one
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                name = path.name.removesuffix(".partial")
                if SEGMENT.match(name) and name[8:] < first_needed:
                    path.unlink()
                    removed.append(f"{folder.name}/{path.name}")
            if folder.name != sysid and not any(folder.iterdir()):
                folder.rmdir()  # a retired folder with nothing left in it
    return sorted(removed)


def wal_summary(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per cluster folder: segment count, bytes, newest segment and its age in seconds."""
    summary: dict[str, dict[str, Any]] = {}
    root = wal_root(settings)
    if not root.is_dir():
        return summary
    now = time.time()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = [p for p in folder.iterdir() if SEGMENT.match(p.name.removesuffix(".partial"))]
        newest = max(files, key=lambda p: p.stat().st_mtime, default=None)
        summary[folder.name] = {
            "segments": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "newest": newest.name if newest else None,
            "newest_age_seconds": round(now - newest.stat().st_mtime, 1) if newest else None,
        }
    return summary
