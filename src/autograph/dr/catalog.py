"""The backup catalog: one per kind, over up to three tiers (local disk primary, S3 secondary,
and the encrypted off-site tier of :mod:`autograph.dr.storage.offsite`).

Layout (SPEC §5): database backups in ``BACKUPS/database/`` and ``s3://autograph-backups/
database/``; bucket backups in ``BACKUPS/minio/`` and ``s3://minio-backups/``. Each backup is an
artifact (``NAME.dump``, ``NAME.tar.gz``) plus ``NAME.manifest.json`` written last (the commit
point). Only manifests are listed; an artifact without one is incomplete and removed by
:meth:`Catalog.clean_incomplete`. Artifacts are named ``NAME.<ext>`` (that is how a file is
known to belong to a manifest without reading it). Listing and fetching need nothing but the
storage.

How a producer (DatabaseBackupManager, MinIOBucketBackupManager) uses it::

    catalog.validate_new(name)                     # 400 / 409 before any work
    with catalog.stage(artifact_key) as sink:      # local temp file, sha256 on the way
        ...write the artifact...                  # renamed into place on clean exit
    manifest = Manifest(..., size_bytes=sink.size, sha256=sink.hexdigest())
    ...verify the local copy...
    entry = catalog.commit(manifest)               # S3 copy (failure recorded), manifests last
    # on any failure before commit: catalog.discard(artifact_key)

Off-site: ``publish`` ships the artifact, then its manifest, off-site after the local commit
(best effort: a failure leaves the backup in the *backlog*, the local backups with no off-site
manifest, which :func:`autograph.dr.offsite.ship.ship_backlog` sends when the store is back).
The off-site manifest records ``extra.offsite`` (key id, ciphertext sha256, shipping time).

Callers hold the kind's lock (:mod:`autograph.dr.ops.locks`) around writes and cleanup.
"""

from __future__ import annotations

import builtins
import contextlib
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autograph.clock import isoformat, utc_now
from autograph.config import Settings
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
from autograph.dr.ops import locks
from autograph.dr.storage import CHUNK, BackupStore, ByteProgress, sha256_of
from autograph.dr.storage.follow import FollowUpload
from autograph.dr.storage.local import LocalStore, LocalWriter
from autograph.dr.storage.offsite import OffsiteStore, open_offsite
from autograph.dr.storage.s3 import S3Store
from autograph.errors import (
    AutographError,
    ConfigError,
    Conflict,
    DependencyDown,
    IntegrityError,
    NotFound,
)
from autograph.secrets import Credentials

ALL_TIERS = ("local", "s3", "offsite")  # the default of the ``tiers`` filters
LOCAL_FOLDERS: dict[Kind, str] = {"database": "database", "bucket": "minio", "basebackup": "base"}


@dataclass(frozen=True)
class Fetched:
    """An artifact ready to read on local disk, checked against its manifest."""

    path: Path
    entry: BackupEntry
    location: Tier
    notes: list[str] = field(default_factory=list)


@dataclass
class SyncReport:
    """What ``sync`` did: backups uploaded, failures by name, incomplete files removed."""

    uploaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    removed_incomplete: list[str] = field(default_factory=list)


def open_catalog(settings: Settings, creds: Credentials | None, kind: Kind,
                 *, with_s3: bool = True, with_offsite: bool = True) -> Catalog:
    """The catalog of ``kind`` for these settings (S3 tier omitted when ``with_s3`` is False,
    the off-site tier when not configured or ``with_offsite`` is False).

    Raises ConfigError when the off-site tier is configured without credentials or key.
    """
    from autograph.s3.boto import LazyClient, backup_client

    local = LocalStore(settings.backups_dir / LOCAL_FOLDERS[kind])
    remote: S3Store | None = None
    if with_s3 and creds is not None:
        client = LazyClient(lambda: backup_client(settings, creds, connect_timeout=3.0,
                                                  read_timeout=60.0, retries=2))
        if kind == "database":
            remote = S3Store(client, settings.backup_bucket_database, "database/")
        elif kind == "basebackup":
            remote = S3Store(client, settings.backup_bucket_database, "base/")
        else:
            remote = S3Store(client, settings.backup_bucket_objects, "")
    offsite = open_offsite(settings, LOCAL_FOLDERS[kind]) if with_offsite else None
    return Catalog(kind, local, remote, settings.backups_dir, offsite)


class Catalog:
    """Backups of one kind across the local tier and (optionally) the S3 tier."""

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

    # Writing ---------------------------------------------------------------------------------

    def stage(self, artifact_key: str) -> LocalWriter:
        """A local writer for the artifact: renamed into place on clean exit, else removed."""
        return self.local.writer(artifact_key)

    def follow_upload(self, sink: LocalWriter) -> FollowUpload | None:
        """Start copying a staged artifact to S3 while it is still being written.

        Returns None when there is no S3 tier. See :class:`FollowUpload`.
        """
        if self.remote is None:
            return None
        return FollowUpload(self.remote, sink)

    def upload(self, manifest: Manifest, progress: ByteProgress = None) -> Manifest:
        """Copy the local artifact to S3; return the manifest with ``s3_copy`` recorded.

        Never raises for S3 trouble (the local backup stands): the reason goes in ``s3_error``.
        Raises IntegrityError if the local file no longer matches the manifest's sha256.
        """
        if self.remote is None:
            return manifest.model_copy(update={"s3_copy": "disabled", "s3_error": None})
        try:
            self.remote.put(manifest.artifact, self.local.path(manifest.artifact),
                            expected_sha256=manifest.sha256, progress=progress)
        except IntegrityError:
            raise
        except AutographError as exc:
            return manifest.model_copy(update={"s3_copy": "missing", "s3_error": exc.message})
        return manifest.model_copy(update={"s3_copy": "uploaded", "s3_error": None})

    def write_manifest(self, manifest: Manifest, tiers: builtins.list[str]) -> None:
        """Write ``NAME.manifest.json`` into the named tiers (local first)."""
        data = manifest.model_dump_json(indent=2).encode()
        for store in self.tiers():
            if store.tier in tiers:
                store.put(manifest_key(manifest.name), io.BytesIO(data))

    def publish(self, manifest: Manifest) -> BackupEntry:
        """Write the manifests of an uploaded (or not) artifact: the local one first (the
        commit point), then the S3 one when ``s3_copy`` is ``uploaded``.

        If the S3 manifest cannot be written, the local manifest records the copy as missing.
        Last, the off-site copy (artifact, then manifest); a failure leaves the backup in the
        off-site backlog (:mod:`autograph.dr.offsite.ship`), shipped when the store is back.
        """
        validate_name(manifest.name)
        tiers: builtins.list[Tier] = ["local"]
        self.write_manifest(manifest, ["local"])
        if manifest.s3_copy == "uploaded":
            try:
                self.write_manifest(manifest, ["s3"])
            except AutographError as exc:
                manifest = manifest.model_copy(update={"s3_copy": "missing",
                                                       "s3_error": exc.message})
                self.write_manifest(manifest, ["local"])
            else:
                tiers.append("s3")
        if self.offsite is not None and self.ship_offsite(manifest) is None:
            tiers.append("offsite")
        return BackupEntry(**manifest.model_dump(), locations=tiers)

    def ship_offsite(self, manifest: Manifest) -> AutographError | None:
        """Copy one committed backup off-site: artifact first, manifest last.

        Returns None when both are stored, else the error saying why not (the backup stays in the
        backlog; a partial upload is aborted, so nothing appears under the key). Never raises for
        off-site trouble: the local backup stands.
        """
        store = self.offsite
        if store is None:
            return DependencyDown("no off-site tier configured")
        try:
            with store.writer(manifest.artifact) as sink, \
                    self.local.open(manifest.artifact) as source:
                while chunk := source.read(CHUNK):
                    sink.write(chunk)
                if sink.hexdigest() != manifest.sha256:
                    raise IntegrityError(f"local {manifest.artifact} no longer matches its "
                                         "manifest")
            record = {"key_id": store.key_id, "ciphertext_sha256": sink.ciphertext_sha256,
                      "shipped_at": isoformat(utc_now())}
            shipped = manifest.model_copy(update={"extra": {**manifest.extra, "offsite": record}})
            store.put(manifest_key(manifest.name),
                      io.BytesIO(shipped.model_dump_json(indent=2).encode()))
        except AutographError as exc:
            return exc
        return None

    def commit(self, manifest: Manifest, progress: ByteProgress = None) -> BackupEntry:
        """``publish(upload(manifest))``: S3 copy (failure recorded), then the manifests; then
        the off-site copy (see :meth:`publish`)."""
        return self.publish(self.upload(manifest, progress))

    def update(self, name: str, **changes: Any) -> BackupEntry:
        """Rewrite the manifest of ``name`` with ``changes`` in every tier holding it.

        Raises NotFound; DependencyDown if a tier holding it cannot be written.
        """
        entry = self.get(name)
        manifest = entry.manifest().model_copy(update=changes)
        Manifest.model_validate(manifest.model_dump())
        # The off-site manifest keeps what was shipped (its key id and ciphertext digest).
        self.write_manifest(manifest, [t for t in entry.locations if t != "offsite"])
        return BackupEntry(**manifest.model_dump(), locations=entry.locations)

    def discard(self, artifact_key: str) -> None:
        """Remove an uncommitted artifact from every reachable tier (best effort)."""
        for store in self.tiers():
            try:
                store.delete(artifact_key)
            except AutographError:
                continue

    def delete(self, name: str) -> builtins.list[str]:
        """Delete backup ``name`` from every tier (manifest first); return the tiers.

        Raises NotFound; Conflict if it is being restored or verified; DependencyDown if a
        tier is unreachable (then nothing is deleted).
        """
        entry = self.get(name)
        if name in locks.busy_names(self.backups_dir, self.kind):
            raise Conflict(f"backup {name} is being restored or verified; try again later")
        listing_errors = self.list().unreachable
        if listing_errors:
            raise DependencyDown("cannot delete while a tier is unreachable: "
                                 + "; ".join(f"{t}: {e}" for t, e in listing_errors.items()))
        for store in self.tiers():
            store.delete(manifest_key(name))
            store.delete(entry.artifact)
        return list(entry.locations)

    # Restore side ------------------------------------------------------------------------------

    def fetch(self, name: str, progress: ByteProgress = None) -> Fetched:
        """The artifact of ``name`` on local disk, checked against the manifest's sha256.

        The local copy if intact, else the S3 copy downloaded (checksum checked on the way)
        into the local tier, repairing or restoring the primary copy. Raises NotFound, or
        IntegrityError when no intact copy exists (nothing is changed then).
        """
        entry = self.get(name)
        notes: builtins.list[str] = []
        if "local" in entry.locations:
            path = self.local.path(entry.artifact)
            with self.local.open(entry.artifact) as stream:
                digest, _size = sha256_of(stream, progress)
            if digest == entry.sha256:
                return Fetched(path, entry, "local")
            notes.append(f"local copy damaged (sha256 {digest[:12]}… != {entry.sha256[:12]}…)")
        if "s3" in entry.locations and self.remote is not None:
            try:
                with self.remote.open(entry.artifact) as stream:
                    self.local.put(entry.artifact, stream, expected_sha256=entry.sha256,
                                   progress=progress)
            except IntegrityError as exc:
                notes.append(f"s3 copy damaged ({exc.message})")
            except DependencyDown as exc:
                notes.append(f"s3 copy unavailable ({exc.message})")
            else:
                if "local" not in entry.locations:
                    self.write_manifest(entry.manifest(), ["local"])
                notes.append("fetched from s3 into the local tier")
                return Fetched(self.local.path(entry.artifact), entry, "s3", notes)
        if "offsite" in entry.locations and self.offsite is not None:
            try:
                with self.offsite.open(entry.artifact) as stream:
                    self.local.put(entry.artifact, stream, expected_sha256=entry.sha256,
                                   progress=progress)
            except (IntegrityError, ConfigError) as exc:
                notes.append(f"offsite copy not usable ({exc.message})")
            except DependencyDown as exc:
                notes.append(f"offsite copy unavailable ({exc.message})")
            else:
                if "local" not in entry.locations:
                    self.write_manifest(entry.manifest(), ["local"])
                notes.append("fetched from the off-site tier (decrypted, checked) into local")
                return Fetched(self.local.path(entry.artifact), entry, "offsite", notes)
        raise IntegrityError(f"no intact copy of backup {name}: " + "; ".join(notes or
                             ["no copy in a reachable tier"]))

    # Maintenance -----------------------------------------------------------------------------

    def incomplete(self, tiers: tuple[str, ...] = ALL_TIERS
                   ) -> dict[str, builtins.list[str]]:
        """Per reachable tier (of ``tiers``), the keys that belong to no manifest (interrupted
        backups). Local temporary files (``.NAME.partial-…``) are included.
        """
        found: dict[str, builtins.list[str]] = {}
        for store in self.tiers():
            if store.tier not in tiers:
                continue
            try:
                found[store.tier] = self._orphans(store)
            except DependencyDown:
                continue
        if "local" in tiers:
            found["local"] = found.get("local", []) + [p.name for p in self.local.partials()]
        return found

    def _orphans(self, store: BackupStore) -> builtins.list[str]:
        """Keys of ``store`` that are neither a manifest nor ``NAME.*`` of one (no reads)."""
        keys = [o.key for o in store.list()]
        stems = [k[: -len(MANIFEST_SUFFIX)] + "." for k in keys if k.endswith(MANIFEST_SUFFIX)]
        return [k for k in keys if not k.endswith(MANIFEST_SUFFIX)
                and not any(k.startswith(stem) for stem in stems)]

    def clean_incomplete(self, tiers: tuple[str, ...] = ALL_TIERS) -> builtins.list[str]:
        """Remove interrupted backups' files from every reachable tier (of ``tiers``); return
        ``tier:key``s.

        Only call while holding the kind's lock: an artifact being written has no manifest yet.
        """
        removed: builtins.list[str] = []
        for tier, keys in self.incomplete(tiers).items():
            for key in keys:
                if tier == "local" and key.startswith("."):
                    (self.local.root / key).unlink(missing_ok=True)
                elif tier == "local":
                    self.local.delete(key)
                elif (store := self.store(tier)) is not None:
                    store.delete(key)
                removed.append(f"{tier}:{key}")
        if isinstance(self.remote, S3Store) and "s3" in tiers:
            with contextlib.suppress(DependencyDown):
                self.remote.clean_uploads()
        return removed

    def sync(self, progress: ByteProgress = None) -> SyncReport:
        """Upload to S3 every local backup missing there; record it in both manifests.

        Raises DependencyDown if the S3 tier is unreachable or not configured.
        """
        report = SyncReport()
        if self.remote is None:
            raise DependencyDown("no S3 tier configured for backups")
        listing = self.list()
        if "s3" in listing.unreachable:
            raise DependencyDown(f"S3 backup tier unreachable: {listing.unreachable['s3']}")
        report.removed_incomplete = self.clean_incomplete()
        for entry in listing.backups:
            if "s3" in entry.locations or "local" not in entry.locations:
                continue
            manifest = self.upload(entry.manifest(), progress)
            if manifest.s3_copy != "uploaded":
                report.failed[entry.name] = manifest.s3_error or "upload failed"
                continue
            try:
                self.write_manifest(manifest, ["s3"])
            except AutographError as exc:
                report.failed[entry.name] = exc.message
                continue
            self.write_manifest(manifest, ["local"])
            report.uploaded.append(entry.name)
        return report
