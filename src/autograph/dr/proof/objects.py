"""Restore tests of bucket backups: every object read back with its sha256, then the keys and
etags compared with the live bucket.

A full read is what a restore does minus the writes (every byte decompressed and hashed against
the record), so it proves the backup restorable without a scratch bucket to clean up. The live
comparison tells a backup that missed or garbled objects from a bucket that simply moved on:
an object the live bucket has not modified since the backup began must be in the backup with
the same etag; objects changed, added or deleted since are counted, not failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from autograph.config import Settings
from autograph.dr.buckets.archive_read import read_manifest, verify_archive
from autograph.dr.catalog import Catalog
from autograph.dr.models import BackupEntry
from autograph.errors import IntegrityError
from autograph.s3.bulk import S3Client
from autograph.s3.sigv4 import S3Endpoint
from autograph.secrets import Credentials

SLACK = timedelta(seconds=2)
"""S3 modification times have one-second resolution; give the comparison that much room."""


@dataclass(frozen=True)
class LiveComparison:
    """Keys and etags of a backup against the live bucket."""

    same: int
    changed_since: int
    added_since: int
    deleted_since: int
    wrong: list[str]
    missed: list[str]

    def __str__(self) -> str:
        return (f"vs live: {self.same} same key+etag, {self.changed_since} changed since, "
                f"{self.added_since} added since, {self.deleted_since} deleted since")


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def compare_live(backed_up: dict[str, str], live: Iterable[tuple[str, str, str]],
                 began: datetime) -> LiveComparison:
    """Compare ``{key: etag}`` of a backup that began at ``began`` with the live listing
    (``(key, etag, last_modified)``). Pure."""
    same = changed = added = 0
    wrong: list[str] = []
    missed: list[str] = []
    seen: set[str] = set()
    for key, etag, modified in live:
        seen.add(key)
        when = _when(modified)
        untouched = when is not None and when < began - SLACK
        if key not in backed_up:
            if untouched:
                missed.append(key)
            else:
                added += 1
            continue
        if backed_up[key].strip('"') == etag.strip('"'):
            same += 1
        elif untouched:
            wrong.append(key)
        else:
            changed += 1
    return LiveComparison(same, changed, added, len(set(backed_up) - seen), wrong, missed)


def _live(settings: Settings, creds: Credentials, bucket: str) -> list[tuple[str, str, str]]:
    client = S3Client(S3Endpoint.application(settings, creds))
    return [(o.key, o.etag, o.last_modified) for o in client.list_objects(bucket)]


def _judge(what: str, read: str, comparison: LiveComparison) -> str:
    problems = []
    if comparison.wrong:
        problems.append(f"{len(comparison.wrong)} objects unchanged since the backup have "
                        f"another etag in it (e.g. {comparison.wrong[0]})")
    if comparison.missed:
        problems.append(f"{len(comparison.missed)} objects older than the backup are not in "
                        f"it (e.g. {comparison.missed[0]})")
    if problems:
        raise IntegrityError(f"{what}: " + "; ".join(problems))
    return f"{what}: {read}; {comparison}"


def prove_archive(settings: Settings, creds: Credentials, catalog: Catalog,
                  entry: BackupEntry) -> str:
    """Read the archive in full (the local copy, else the S3 copy) and compare it with the
    live bucket; return what was compared. Raises IntegrityError, DependencyDown."""
    fetched = catalog.fetch(entry.name)
    found = verify_archive(fetched.path, expected_sha256=entry.sha256)
    if entry.object_count is not None and found.objects != entry.object_count:
        raise IntegrityError(f"{entry.name} holds {found.objects} objects, the manifest says "
                             f"{entry.object_count}")
    with open(fetched.path, "rb") as handle:
        records = {r.key: r.etag for r in read_manifest(handle)}
    comparison = compare_live(records, _live(settings, creds, entry.source), entry.started_at)
    copy = "local copy" if fetched.location == "local" else "S3 copy"
    return _judge(entry.name, f"{found.objects} objects read from the {copy}, sha256 each",
                  comparison)


def prove_snapshot(settings: Settings, creds: Credentials, name: str) -> str:
    """Read every object of a snapshot from its blobs (sha256 each) and compare it with the
    live bucket; return what was compared. Raises IntegrityError, NotFound, DependencyDown."""
    from autograph.dr.buckets.snapshots.manager import SnapshotManager

    manager = SnapshotManager(settings, creds)
    with manager.acquire("verify", name):
        snapshot, tiers = manager.read_all(name)
    records = {o.key: o.etag for o in snapshot.objects}
    comparison = compare_live(records, _live(settings, creds, snapshot.bucket),
                              snapshot.started_at)
    where = ", ".join(f"{count} blobs from {tier}" for tier, count in sorted(tiers.items()))
    return _judge(name, f"{len(snapshot.objects)} objects read ({where or 'none'}), sha256 "
                        "each", comparison)
