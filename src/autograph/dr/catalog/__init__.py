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

The package: :mod:`.reading` (tiers, listing, lookup), :mod:`.writing` (:class:`Catalog`: the
commit point, copies, sync), :mod:`.fetch` (the restore side), :mod:`.cleanup` (interrupted
backups).
"""

from __future__ import annotations

from autograph.config import Settings
from autograph.dr.catalog.fetch import Fetched
from autograph.dr.catalog.reading import ALL_TIERS
from autograph.dr.catalog.writing import Catalog, SyncReport
from autograph.dr.models import Kind
from autograph.dr.storage.local import LocalStore
from autograph.dr.storage.offsite import open_offsite
from autograph.dr.storage.s3 import S3Store
from autograph.secrets import Credentials

__all__ = ["ALL_TIERS", "LOCAL_FOLDERS", "Catalog", "Fetched", "SyncReport", "open_catalog"]

LOCAL_FOLDERS: dict[Kind, str] = {"database": "database", "bucket": "minio", "basebackup": "base"}


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
