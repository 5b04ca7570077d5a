"""Reading a catalog: its tiers, their manifests loaded and merged, one backup by name, and
whether a new name is free. A manifest whose artifact is missing or of another size is a
problem in the listing, never a backup."""

from __future__ import annotations

import builtins
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import ValidationError

from autograph.dr.models import (
    MANIFEST_SUFFIX,
    BackupEntry,
    BackupList,
    Kind,
    Manifest,
    Tier,
    manifest_key,
    validate_name,
)
from autograph.dr.storage import BackupStore
from autograph.dr.storage.local import LocalStore
from autograph.dr.storage.offsite import OffsiteStore
from autograph.errors import (
    AutographError,
    ConfigError,
    Conflict,
    DependencyDown,
    IntegrityError,
    NotFound,
)

ALL_TIERS = ("local", "s3", "offsite")  # the default of the ``tiers`` filters


class CatalogReader:
    """Backups of one kind across the local tier and (optionally) the S3 and off-site tiers:
    listing, lookup, and the manifest write every other part builds on."""

    def __init__(self, kind: Kind, local: LocalStore, remote: BackupStore | None,
                 backups_dir: Path, offsite: OffsiteStore | None = None) -> None:
        self.kind = kind
        self.local = local
        self.remote = remote
        self.offsite = offsite
        self.backups_dir = backups_dir

    def tiers(self) -> list[BackupStore]:
        """The stores, primary first."""
        return ([self.local] + ([self.remote] if self.remote is not None else [])
                + ([self.offsite] if self.offsite is not None else []))

    def store(self, tier: str) -> BackupStore | None:
        """The store of a tier by name (None when this catalog has no such tier)."""
        return next((s for s in self.tiers() if s.tier == tier), None)

    # Reading ---------------------------------------------------------------------------------

    def _load(self, store: BackupStore, key: str,
              artifact_size: Callable[[str], int | None]) -> Manifest | str | None:
        """The manifest at ``key`` if valid and its artifact present; else why not (None: gone).

        ``artifact_size(key)`` says the size of a key in the tier (None when missing).
        """
        try:
            with store.open(key) as stream:
                data = stream.read()
            manifest = Manifest.model_validate_json(data)
        except NotFound:
            return None
        except (ValidationError, ValueError) as exc:
            return f"unreadable manifest ({type(exc).__name__})"
        except (IntegrityError, ConfigError) as exc:  # off-site: damaged, or key not held
            return f"manifest not usable: {exc.message}"
        if manifest.name + MANIFEST_SUFFIX != key or manifest.kind != self.kind:
            return "manifest does not match its file name or kind"
        size = artifact_size(manifest.artifact)
        if size is None:
            return f"artifact {manifest.artifact} missing"
        if size != manifest.size_bytes:
            return f"artifact size {size} != manifest {manifest.size_bytes}"
        return manifest

    def _read_tier(self, store: BackupStore, problems: list[str]) -> dict[str, Manifest]:
        """The valid manifests of one tier whose artifact is present, by name."""
        sizes = {o.key: o.size for o in store.list()}
        keys = [k for k in sizes if k.endswith(MANIFEST_SUFFIX)]

        def load(key: str) -> tuple[str, Manifest | str | None]:
            return key, self._load(store, key, sizes.get)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(load, keys)) if len(keys) > 1 else [load(k) for k in keys]
        found: dict[str, Manifest] = {}
        for key, value in results:
            if isinstance(value, Manifest):
                found[value.name] = value
            elif value is not None:
                problems.append(f"{store.tier}: {key}: {value}")
        return found

    @staticmethod
    def _merge(per_tier: dict[str, dict[str, Manifest]]) -> builtins.list[BackupEntry]:
        merged: dict[str, BackupEntry] = {}
        order: tuple[Tier, ...] = ("offsite", "s3", "local")  # local last: its manifest wins
        for tier in order:
            for name, manifest in per_tier.get(tier, {}).items():
                previous = merged.get(name)
                locations: builtins.list[Tier] = sorted(
                    {*(previous.locations if previous else []), tier},
                    key=("local", "s3", "offsite").index)
                merged[name] = BackupEntry(**manifest.model_dump(), locations=locations)
        return sorted(merged.values(), key=lambda e: (e.created_at, e.name), reverse=True)

    def list(self, tiers: tuple[str, ...] = ("local", "s3", "offsite")) -> BackupList:
        """Every committed backup, both tiers merged (or only ``tiers``), newest first.

        A tier that cannot be read is named in ``unreachable``; the other tier still lists.
        """
        problems: builtins.list[str] = []
        unreachable: dict[str, str] = {}
        per_tier: dict[str, dict[str, Manifest]] = {}
        for store in self.tiers():
            if store.tier not in tiers:
                continue
            try:
                per_tier[store.tier] = self._read_tier(store, problems)
            except AutographError as exc:
                unreachable[store.tier] = exc.message
        return BackupList(backups=self._merge(per_tier), unreachable=unreachable,
                          problems=problems)

    def names(self, tiers: tuple[str, ...] = ALL_TIERS) -> set[str]:
        """Names with a manifest in any reachable tier (of ``tiers``; one listing per tier,
        no reads)."""
        found: set[str] = set()
        for store in self.tiers():
            if store.tier not in tiers:
                continue
            try:
                found.update(o.key[: -len(MANIFEST_SUFFIX)] for o in store.list()
                             if o.key.endswith(MANIFEST_SUFFIX))
            except DependencyDown:
                continue
        return found

    def get(self, name: str, tiers: tuple[str, ...] = ALL_TIERS) -> BackupEntry:
        """One backup by name (reads only its own manifest in each tier of ``tiers``).

        Raises InvalidInput for a bad name, NotFound if not committed; DependencyDown when a
        tier is unreachable and the backup is not in the other one.
        """
        validate_name(name)
        per_tier: dict[str, dict[str, Manifest]] = {}
        unreachable: dict[str, str] = {}
        for store in self.tiers():
            if store.tier not in tiers:
                continue

            def size_of(key: str, store: BackupStore = store) -> int | None:
                try:
                    return store.stat(key).size
                except NotFound:
                    return None

            try:
                found = self._load(store, manifest_key(name), size_of)
            except DependencyDown as exc:
                unreachable[store.tier] = exc.message
                continue
            if isinstance(found, Manifest):
                per_tier[store.tier] = {name: found}
        entries = self._merge(per_tier)
        if entries:
            return entries[0]
        if unreachable:
            down = ", ".join(f"{t}: {why}" for t, why in unreachable.items())
            raise DependencyDown(f"backup {name} not found in the reachable tiers ({down})")
        raise NotFound(f"no {self.kind} backup named {name}")

    def validate_new(self, name: str, tiers: tuple[str, ...] = ALL_TIERS) -> str:
        """Check ``name`` is valid and not used yet (in ``tiers``). Raises InvalidInput or
        Conflict."""
        validate_name(name)
        for store in self.tiers():
            if store.tier not in tiers:
                continue
            try:
                store.stat(manifest_key(name))
            except NotFound:
                continue
            except DependencyDown:
                continue  # an unreachable tier cannot be checked; the local tier decides
            raise Conflict(f"a {self.kind} backup named {name} already exists")
        return name

    def write_manifest(self, manifest: Manifest, tiers: builtins.list[str]) -> None:
        """Write ``NAME.manifest.json`` into the named tiers (local first)."""
        data = manifest.model_dump_json(indent=2).encode()
        for store in self.tiers():
            if store.tier in tiers:
                store.put(manifest_key(manifest.name), io.BytesIO(data))
