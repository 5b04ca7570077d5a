"""The restore side of a catalog: an artifact on local disk, checked against its manifest,
from the first tier holding an intact copy (repairing the local copy on the way)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autograph.dr.catalog.reading import CatalogReader
from autograph.dr.models import BackupEntry, Tier
from autograph.dr.storage import ByteProgress, sha256_of
from autograph.errors import AutographError, ConfigError, DependencyDown, IntegrityError


@dataclass(frozen=True)
class Fetched:
    """An artifact ready to read on local disk, checked against its manifest."""

    path: Path
    entry: BackupEntry
    location: Tier
    notes: list[str] = field(default_factory=list)


_REMOTE_TIERS: tuple[tuple[Tier, tuple[type[AutographError], ...], str, str], ...] = (
    ("s3", (IntegrityError,), "damaged", "fetched from s3 into the local tier"),
    ("offsite", (IntegrityError, ConfigError), "not usable",
     "fetched from the off-site tier (decrypted, checked) into local"),
)
"""The tiers a damaged or missing local copy is fetched from, in order: the errors that make a
copy unusable, the word for it, and the note when it served."""


def fetch(catalog: CatalogReader, name: str, progress: ByteProgress = None) -> Fetched:
    """The artifact of ``name`` on local disk, checked against the manifest's sha256.

    The local copy if intact, else the S3 copy (then the off-site one) downloaded, checksum
    checked on the way, into the local tier, repairing or restoring the primary copy. Raises
    NotFound, or IntegrityError when no intact copy exists (nothing is changed then).
    """
    entry = catalog.get(name)
    notes: list[str] = []
    if "local" in entry.locations:
        path = catalog.local.path(entry.artifact)
        with catalog.local.open(entry.artifact) as stream:
            digest, _size = sha256_of(stream, progress)
        if digest == entry.sha256:
            return Fetched(path, entry, "local")
        notes.append(f"local copy damaged (sha256 {digest[:12]}… != {entry.sha256[:12]}…)")
    for tier, unusable, bad, fetched_note in _REMOTE_TIERS:
        store = catalog.store(tier)
        if tier not in entry.locations or store is None:
            continue
        try:
            with store.open(entry.artifact) as stream:
                catalog.local.put(entry.artifact, stream, expected_sha256=entry.sha256,
                                  progress=progress)
        except unusable as exc:
            notes.append(f"{tier} copy {bad} ({exc.message})")
        except DependencyDown as exc:
            notes.append(f"{tier} copy unavailable ({exc.message})")
        else:
            if "local" not in entry.locations:
                catalog.write_manifest(entry.manifest(), ["local"])
            notes.append(fetched_note)
            return Fetched(catalog.local.path(entry.artifact), entry, tier, notes)
    raise IntegrityError(f"no intact copy of backup {name}: " + "; ".join(notes or
                         ["no copy in a reachable tier"]))
