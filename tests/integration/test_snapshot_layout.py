"""Snapshots stored in today's on-disk layout stay listed and restorable.

The index and blobs below are written by hand, field by field, as ``autograph-snapshot/1``
stores them (``BACKUPS/snapshots/index/<name>.snapshot.json.gz``, gzipped JSON; blobs named by
the sha256 of the object's bytes, ``.z`` when zlib-compressed), not by the code under test: a
change of layout or of how snapshots are listed (issue #10: snapshots into the catalog) must
keep reading what users already have.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograph.dr.buckets.snapshots.manager import SnapshotManager
from autograph.stack.lifecycle import Stack
from bucketbackups import Buckets, bucket_settings

PLAIN = b"a plain blob, stored as it is"
CANVAS = json.dumps({"nodes": [{"id": i} for i in range(300)]}).encode()


@pytest.fixture
def buckets(infra_stack: Stack, tmp_path: Path) -> Iterator[Buckets]:
    with bucket_settings(infra_stack, tmp_path) as handle:
        yield handle


def _write_stored_snapshot(backups_dir: Path, bucket: str) -> str:
    """One snapshot of ``bucket`` as the current code lays it out on local disk; its name."""
    name = f"snap_{bucket}_20260301T110000250Z"
    root = backups_dir / "snapshots"
    (root / "index").mkdir(parents=True)
    (root / "blobs").mkdir(parents=True)
    plain_sha = hashlib.sha256(PLAIN).hexdigest()
    canvas_sha = hashlib.sha256(CANVAS).hexdigest()
    packed = zlib.compress(CANVAS, 6)
    (root / "blobs" / plain_sha).write_bytes(PLAIN)
    (root / "blobs" / f"{canvas_sha}.z").write_bytes(packed)
    objects = [
        {"key": "docs/plain.txt", "size": len(PLAIN), "etag": '"e1"',
         "last_modified": "2026-03-01T10:59:00Z", "content_type": "text/plain",
         "metadata": {"owner": "alice"}, "sha256": plain_sha},  # before blob/stored_size
        {"key": "canvas.json", "size": len(CANVAS), "etag": '"e2"',
         "last_modified": "2026-03-01T10:58:00Z", "content_type": "application/json",
         "metadata": {}, "sha256": canvas_sha, "blob": f"{canvas_sha}.z",
         "stored_size": len(packed)},
    ]
    index = {"name": name, "bucket": bucket, "started_at": "2026-03-01T11:00:00.250000Z",
             "finished_at": "2026-03-01T11:00:01Z", "objects": objects,
             "size": len(PLAIN) + len(CANVAS), "parent": None, "new_blobs": 2,
             "new_bytes": len(PLAIN) + len(packed), "vanished": [], "shrunk": None,
             "baseline": None, "baseline_objects": 0, "format": "autograph-snapshot/1"}
    (root / "index" / f"{name}.snapshot.json.gz").write_bytes(
        gzip.compress(json.dumps(index).encode()))
    return name


def test_a_snapshot_in_the_stored_layout_is_listed_verified_and_restored(
        infra_stack: Stack, buckets: Buckets) -> None:
    bucket = buckets.settings.app_buckets[0]
    name = _write_stored_snapshot(buckets.settings.backups_dir, bucket)
    manager = SnapshotManager(buckets.settings, infra_stack.creds)

    listed = manager.list(bucket)["snapshots"]
    assert [(r["name"], r["bucket"], r["locations"]) for r in listed] == [
        (name, bucket, ["local"])]
    assert manager.latest(bucket) == name
    checked = manager.verify(name, deep=True)
    assert checked["tiers"]["local"]["missing_or_damaged"] == 0 and checked["restorable"]

    target = buckets.make("restored")
    result = manager.restore(name, target_bucket=target)
    assert (result.restored, result.skipped, result.failed) == (2, 0, {})
    assert buckets.contents(target) == {
        "docs/plain.txt": (PLAIN, "text/plain", {"owner": "alice"}),
        "canvas.json": (CANVAS, "application/json", {}),
    }
