"""Pruning what point-in-time recoveries leave behind: streamed WAL in retired folders, and the
whole clusters kept for going back (real folders, a local-tier catalog)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

from autograph.config import load_settings
from autograph.dr.models import Manifest, Verification
from autograph.dr.postgres.data_folder import drop_old_clusters
from autograph.dr.postgres.wal_files import prune_wal
from autograph.dr.postgres.walstream import wal_root
from catalogutil import local_catalog

SYSID = "7301234567890123456"
NOON = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def _base_backup(backups_dir: Path, start_wal_file: str) -> None:
    catalog = local_catalog(backups_dir, "basebackup")
    name = f"base_{secrets.token_hex(3)}"
    with catalog.stage(f"{name}.base.tar") as sink:
        sink.write(b"tar bytes")
    catalog.commit(Manifest(
        name=name, kind="basebackup", source="autograph", format="tar",
        artifact=f"{name}.base.tar", created_at=NOON, started_at=NOON, finished_at=NOON,
        size_bytes=sink.size, sha256=sink.hexdigest(), tags=["scheduled"],
        verification=Verification(status="passed", at=NOON),
        extra={"system_identifier": SYSID, "start_wal_file": start_wal_file}))


def _segments(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_wal_in_retired_folders_is_pruned_like_the_live_one(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", backup_dir=tmp_path / "backups")
    root = wal_root(settings)
    _segments(root / f"{SYSID}.pre_pitr_20260101_000000", "000000010000000000000003")
    _segments(root / f"{SYSID}.pre_pitr_20260301_000000", "000000010000000000000005",
              "00000001000000000000000F", "000000010000000000000012", "00000002.history")
    _segments(root / SYSID, "000000020000000000000010", "000000020000000000000011.partial")
    _base_backup(settings.backups_dir, "000000010000000000000010")

    removed = prune_wal(settings, local_catalog(settings.backups_dir, "basebackup"))
    assert removed == [f"{SYSID}.pre_pitr_20260101_000000/000000010000000000000003",
                       f"{SYSID}.pre_pitr_20260301_000000/000000010000000000000005",
                       f"{SYSID}.pre_pitr_20260301_000000/00000001000000000000000F"]
    assert not (root / f"{SYSID}.pre_pitr_20260101_000000").exists()  # emptied: removed
    assert sorted(p.name for p in (root / f"{SYSID}.pre_pitr_20260301_000000").iterdir()) == [
        "000000010000000000000012", "00000002.history"]
    assert len(list((root / SYSID).iterdir())) == 2


def test_only_the_newest_kept_clusters_survive(tmp_path: Path) -> None:
    for stamp in ("20260101_000000", "20260201_000000", "20260301_000000"):
        (tmp_path / f"postgres.pre_pitr_{stamp}" / "base").mkdir(parents=True)
    (tmp_path / "postgres").mkdir()
    assert drop_old_clusters(tmp_path, keep=2) == ["postgres.pre_pitr_20260101_000000"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "postgres", "postgres.pre_pitr_20260201_000000", "postgres.pre_pitr_20260301_000000"]
    assert drop_old_clusters(tmp_path, keep=2) == []
