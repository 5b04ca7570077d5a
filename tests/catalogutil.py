"""Test support: catalogs over a temporary folder (and optionally a private S3 prefix), and a
tiny producer that commits real artifacts and manifests through the catalog's own write path."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from autograph.dr.catalog import LOCAL_FOLDERS, Catalog
from autograph.dr.models import BackupEntry, Kind, Manifest, Verification, VerificationStatus
from autograph.dr.storage.local import LocalStore
from autograph.dr.storage.s3 import S3Store


def local_catalog(backups_dir: Path, kind: Kind) -> Catalog:
    """A catalog with only the local tier."""
    return Catalog(kind, LocalStore(backups_dir / LOCAL_FOLDERS[kind]), None, backups_dir)


def two_tier_catalog(backups_dir: Path, kind: Kind, client: Any, bucket: str) -> Catalog:
    """A catalog whose S3 tier is a private prefix of ``bucket`` (so tests never collide)."""
    remote = S3Store(client, bucket, f"test-{secrets.token_hex(6)}/")
    return Catalog(kind, LocalStore(backups_dir / LOCAL_FOLDERS[kind]), remote, backups_dir)


def add_backup(catalog: Catalog, name: str, created_at: datetime, *, source: str = "autograph",
               size: int = 64, tags: Sequence[str] = ("scheduled",),
               verification: VerificationStatus = "passed",
               duration: timedelta = timedelta(seconds=2)) -> BackupEntry:
    """Commit a backup of ``size`` bytes to every tier of ``catalog``."""
    artifact = f"{name}.dump" if catalog.kind == "database" else f"{name}.tar.gz"
    with catalog.stage(artifact) as sink:
        sink.write(secrets.token_bytes(size))
    manifest = Manifest(
        name=name, kind=catalog.kind, source=source,
        format="pg_dump -Fc" if catalog.kind == "database" else "tar.gz", artifact=artifact,
        created_at=created_at, started_at=created_at, finished_at=created_at + duration,
        size_bytes=sink.size, sha256=sink.hexdigest(), tags=list(tags),
        verification=Verification(status=verification,
                                  at=created_at if verification != "not_verified" else None))
    return catalog.commit(manifest)


def names(catalog: Catalog) -> set[str]:
    """The names of the committed backups."""
    return {entry.name for entry in catalog.list().backups}
