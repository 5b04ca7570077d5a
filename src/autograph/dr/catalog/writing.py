"""Writing a catalog: staging an artifact, its S3 and off-site copies, the manifests last (the
commit point), updates, deletes and sync. :class:`Catalog` is the whole catalog: reading
(:mod:`.reading`), fetching (:mod:`.fetch`) and cleanup (:mod:`.cleanup`) included."""

from __future__ import annotations

import builtins
import io
from dataclasses import dataclass, field
from typing import Any

from autograph.clock import isoformat, utc_now
from autograph.dr.catalog import cleanup
from autograph.dr.catalog.fetch import Fetched, fetch
from autograph.dr.catalog.reading import ALL_TIERS, CatalogReader
from autograph.dr.models import BackupEntry, Manifest, Tier, manifest_key, validate_name
from autograph.dr.ops import locks
from autograph.dr.storage import CHUNK, ByteProgress
from autograph.dr.storage.follow import FollowUpload
from autograph.dr.storage.local import LocalWriter
from autograph.errors import AutographError, Conflict, DependencyDown, IntegrityError


@dataclass
class SyncReport:
    """What ``sync`` did: backups uploaded, failures by name, incomplete files removed."""

    uploaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    removed_incomplete: list[str] = field(default_factory=list)


class Catalog(CatalogReader):
    """Backups of one kind across the local tier and (optionally) the S3 and off-site tiers."""

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
    # Restore side and maintenance ----------------------------------------------------------

    def fetch(self, name: str, progress: ByteProgress = None) -> Fetched:
        """The artifact of ``name`` on local disk, checked (see :func:`.fetch.fetch`)."""
        return fetch(self, name, progress)

    def incomplete(self, tiers: tuple[str, ...] = ALL_TIERS
                   ) -> dict[str, builtins.list[str]]:
        """Per reachable tier, the keys of interrupted backups (see :mod:`.cleanup`)."""
        return cleanup.incomplete(self, tiers)

    def clean_incomplete(self, tiers: tuple[str, ...] = ALL_TIERS) -> builtins.list[str]:
        """Remove interrupted backups' files (see :func:`.cleanup.clean_incomplete`)."""
        return cleanup.clean_incomplete(self, tiers)

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
