"""Interrupted backups: files in a tier that belong to no manifest, found and removed (only
under the kind's lock: an artifact being written has no manifest yet)."""

from __future__ import annotations

import contextlib

from autograph.dr.catalog.reading import ALL_TIERS, CatalogReader
from autograph.dr.models import MANIFEST_SUFFIX
from autograph.dr.storage import BackupStore
from autograph.dr.storage.s3 import S3Store
from autograph.errors import DependencyDown


def incomplete(catalog: CatalogReader, tiers: tuple[str, ...] = ALL_TIERS
               ) -> dict[str, list[str]]:
    """Per reachable tier (of ``tiers``), the keys that belong to no manifest (interrupted
    backups). Local temporary files (``.NAME.partial-…``) are included.
    """
    found: dict[str, list[str]] = {}
    for store in catalog.tiers():
        if store.tier not in tiers:
            continue
        try:
            found[store.tier] = _orphans(store)
        except DependencyDown:
            continue
    if "local" in tiers:
        found["local"] = found.get("local", []) + [p.name for p in catalog.local.partials()]
    return found


def _orphans(store: BackupStore) -> list[str]:
    """Keys of ``store`` that are neither a manifest nor ``NAME.*`` of one (no reads)."""
    keys = [o.key for o in store.list()]
    stems = [k[: -len(MANIFEST_SUFFIX)] + "." for k in keys if k.endswith(MANIFEST_SUFFIX)]
    return [k for k in keys if not k.endswith(MANIFEST_SUFFIX)
            and not any(k.startswith(stem) for stem in stems)]


def clean_incomplete(catalog: CatalogReader,
                     tiers: tuple[str, ...] = ALL_TIERS) -> list[str]:
    """Remove interrupted backups' files from every reachable tier (of ``tiers``); return
    ``tier:key``s.

    Only call while holding the kind's lock: an artifact being written has no manifest yet.
    """
    removed: list[str] = []
    for tier, keys in incomplete(catalog, tiers).items():
        for key in keys:
            if tier == "local" and key.startswith("."):
                (catalog.local.root / key).unlink(missing_ok=True)
            elif tier == "local":
                catalog.local.delete(key)
            elif (store := catalog.store(tier)) is not None:
                store.delete(key)
            removed.append(f"{tier}:{key}")
    if isinstance(catalog.remote, S3Store) and "s3" in tiers:
        with contextlib.suppress(DependencyDown):
            catalog.remote.clean_uploads()
    return removed
