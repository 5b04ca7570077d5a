"""MinIOBucketBackupManager on the real S3 server: create, archive layout, restore, overwrite,
a bucket changing during the backup, all buckets, bucket usage, delete."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograph.dr.buckets.archive_read import read_manifest
from autograph.dr.buckets.manager import MinIOBucketBackupManager
from autograph.errors import NotFound
from autograph.stack.lifecycle import Stack
from bucketbackups import Buckets, bucket_settings
from dbbackups import recorded_events

LONG_KEY = ("x" * 199 + "/") * 4 + "t" * 200  # 1,000 characters
ODD_OBJECTS = {
    "plain.json": (b'{"a": 1}', "application/json", {"owner": "alice", "team": "core"}),
    "dir": (b"a file where a folder also exists", "text/plain", {}),
    "dir/sub/file.bin": (os.urandom(3000), "application/octet-stream", {"k": "v"}),
    "empty": (b"", "application/x-empty", {}),
    "Case": b"upper",
    "case": b"lower (same name on a case-insensitive disk)",
    "..c/a..b/.hidden": b"dots that are not path traversal",
    "sp ace/tab\there": b"whitespace",
    "new\nline": b"a control character",
    "pct%2F/q?x=1&y=2#frag": b"URL metacharacters",
    "ⓤⓝⓘ/ключ/键": "ünïcødé body".encode(),
    LONG_KEY: b"a 1000-character key",
}


@pytest.fixture
def buckets(infra_stack: Stack, tmp_path: Path) -> Iterator[Buckets]:
    with bucket_settings(infra_stack, tmp_path) as handle:
        yield handle


@pytest.fixture
def manager(infra_stack: Stack, buckets: Buckets) -> MinIOBucketBackupManager:
    return MinIOBucketBackupManager(buckets.settings, infra_stack.creds)


def _normalized(value: object) -> tuple[bytes, str, dict[str, str]]:
    body, ctype, meta = value if isinstance(value, tuple) else (value, "", {})
    return body, ctype, meta  # type: ignore[return-value]


def test_create_archives_odd_keys_that_restore_byte_for_byte_with_metadata(
        manager: MinIOBucketBackupManager, buckets: Buckets) -> None:
    source = buckets.make("src", ODD_OBJECTS)
    with recorded_events() as events:
        entry = manager.create(source)
    assert entry.locations == ["local", "s3"]
    assert entry.kind == "bucket" and entry.source == source and entry.format == "tar.gz"
    assert entry.object_count == len(ODD_OBJECTS)
    assert entry.verification.status == "passed"
    assert entry.name.startswith(f"manual_{source}_")
    local = manager.catalog.local.path(entry.artifact)
    assert hashlib.sha256(local.read_bytes()).hexdigest() == entry.sha256
    assert [e.event for e in events] == ["backup_succeeded"]

    restored = manager.restore(entry.name, buckets.name("copy"))
    assert (restored.restored, restored.skipped, restored.failed) == (len(ODD_OBJECTS), 0, 0)
    copy = buckets.contents(buckets.name("copy"))
    assert set(copy) == set(ODD_OBJECTS)
    for key, value in ODD_OBJECTS.items():
        body, ctype, meta = _normalized(value)
        assert copy[key][0] == body, key
        assert copy[key][2] == meta, key
        if ctype:
            assert copy[key][1] == ctype, key


def test_a_plain_tar_extracts_every_object_inside_the_target_folder(
        manager: MinIOBucketBackupManager, buckets: Buckets, tmp_path: Path) -> None:
    entry = manager.create(buckets.make("src", ODD_OBJECTS))
    archive = manager.catalog.local.path(entry.artifact)
    listing = subprocess.run(["tar", "-tzf", str(archive)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert listing[0] == "manifest.jsonl"
    target = tmp_path / "extracted"
    target.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(target)], check=True)
    files = [p for p in target.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(target.resolve()) for p in files)
    with archive.open("rb") as handle:
        records = read_manifest(handle)
    assert [r.key for r in records] == sorted(ODD_OBJECTS)
    for record in records:
        assert (target / record.member).read_bytes() == _normalized(ODD_OBJECTS[record.key])[0]
        assert record.sha256 == hashlib.sha256((target / record.member).read_bytes()).hexdigest()
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=target, capture_output=True,
                          text=True)
    assert sums.returncode == 0, sums.stdout + sums.stderr


def test_a_large_object_is_fetched_in_ranges_and_restored_in_parts(
        manager: MinIOBucketBackupManager, buckets: Buckets) -> None:
    big = os.urandom(70 * 1024 * 1024 + 12345)  # above the 64 MiB ranged/multipart threshold
    source = buckets.make("src", {"big.bin": (big, "video/mp4", {"camera": "a"}),
                                  "small.txt": b"small"})
    entry = manager.create(source)
    assert entry.object_count == 2 and entry.extra["bytes"] == len(big) + 5
    restored = manager.restore(entry.name, buckets.name("copy"))
    assert (restored.restored, restored.failed) == (2, 0)
    got = buckets.client.get_object(Bucket=buckets.name("copy"), Key="big.bin")
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(big).digest()
    assert got["ContentType"] == "video/mp4" and got["Metadata"] == {"camera": "a"}


def test_overwrite_false_never_touches_existing_objects_and_true_replaces_them(
        manager: MinIOBucketBackupManager, buckets: Buckets) -> None:
    source = buckets.make("src", {f"k{i}": f"backup {i}".encode() for i in range(6)})
    entry = manager.create(source)
    target = buckets.make("dst", {"k0": b"newer 0", "k1": b"newer 1", "other": b"unrelated"})
    before = buckets.etags(target)

    kept = manager.restore(entry.name, target, overwrite=False)
    assert (kept.restored, kept.skipped, kept.failed) == (4, 2, 0)
    after = buckets.etags(target)
    assert {k: after[k] for k in before} == before
    assert buckets.contents(target)["k0"][0] == b"newer 0"
    assert buckets.contents(target)["k5"][0] == b"backup 5"

    replaced = manager.restore(entry.name, target, overwrite=True)
    assert (replaced.restored, replaced.skipped, replaced.failed) == (6, 0, 0)
    contents = buckets.contents(target)
    assert contents["k0"][0] == b"backup 0" and contents["other"][0] == b"unrelated"


def test_restore_defaults_to_the_source_bucket_and_creates_a_missing_one(
        manager: MinIOBucketBackupManager, buckets: Buckets) -> None:
    source = buckets.make("src", {"a": b"1", "b": b"2"})
    entry = manager.create(source)
    buckets.drop(source)
    result = manager.restore(entry.name)
    assert result.target_bucket == source and result.restored == 2
    assert {k: v[0] for k, v in buckets.contents(source).items()} == {"a": b"1", "b": b"2"}


def test_a_bucket_changing_during_the_backup_keeps_the_listed_set_and_reports_deletions(
        manager: MinIOBucketBackupManager, buckets: Buckets) -> None:
    source = buckets.make("src", {f"obj-{i:03d}": bytes([i]) * 100 for i in range(40)})
    manager.workers = 1  # key order: the deleted keys are still ahead when the first one lands
    doomed = ["obj-037", "obj-038", "obj-039"]
    changed: list[bool] = []

    def meddle(phase: str, done: int, *_rest: int) -> None:
        if not changed:
            changed.append(True)
            for key in doomed:
                buckets.client.delete_object(Bucket=source, Key=key)
            buckets.put(source, "obj-new", b"added after the listing")

    entry = manager.create(source, counts=meddle)
    assert entry.object_count == 37
    assert entry.extra["deleted_during_backup"] == doomed
    assert entry.extra["deleted_during_backup_count"] == 3
    with manager.catalog.local.path(entry.artifact).open("rb") as handle:
        keys = [r.key for r in read_manifest(handle)]
    assert keys == [f"obj-{i:03d}" for i in range(37)]


def test_create_all_backs_up_every_application_bucket(
        manager: MinIOBucketBackupManager, buckets: Buckets) -> None:
    for bucket in buckets.settings.app_buckets:
        buckets.client.create_bucket(Bucket=bucket)
        buckets.put(bucket, "doc", bucket.encode())
    entries = manager.create_all(scheduled=True)
    assert [e.source for e in entries] == list(buckets.settings.app_buckets)
    assert all(e.name.startswith(f"scheduled_{e.source}_") for e in entries)
    assert all("scheduled" in e.tags and e.object_count == 1 for e in entries)
    assert {b.name for b in manager.list().backups} == {e.name for e in entries}
    first = buckets.settings.app_buckets[0]
    assert [b.source for b in manager.list(first).backups] == [first]


def test_bucket_listing_counts_objects_and_bytes(manager: MinIOBucketBackupManager,
                                                 buckets: Buckets) -> None:
    source = buckets.make("src", {"a": b"x" * 10, "b/c": b"y" * 32, "d": b""})
    entry = manager.create(source)
    usage = {b.name: b for b in manager.buckets().buckets}
    assert (usage[source].object_count, usage[source].size_bytes) == (3, 42)
    assert usage[source].last_backup == entry.name
    assert buckets.settings.backup_bucket_objects not in usage


def test_delete_removes_both_copies(manager: MinIOBucketBackupManager,
                                    buckets: Buckets) -> None:
    entry = manager.create(buckets.make("src", {"a": b"1"}))
    assert manager.delete(entry.name) == ["local", "s3"]
    with pytest.raises(NotFound):
        manager.get(entry.name)
    assert list(manager.catalog.local.root.glob(entry.name + "*")) == []
    backup_bucket = buckets.settings.backup_bucket_objects
    assert buckets.client.list_objects_v2(Bucket=backup_bucket).get("KeyCount", 0) == 0


def test_verify_reads_both_copies_and_records_the_result(
        manager: MinIOBucketBackupManager, buckets: Buckets) -> None:
    entry = manager.create(buckets.make("src", {"a": b"1", "b": os.urandom(100_000)}))
    verified = manager.verify(entry.name)
    assert verified.verification.status == "passed"
    assert verified.verification.checks["local copy"].startswith("ok: 2 objects")
    assert verified.verification.checks["s3 copy"].startswith("ok: 2 objects")


def test_an_empty_bucket_backs_up_and_restores_to_an_empty_bucket(
        manager: MinIOBucketBackupManager, buckets: Buckets) -> None:
    entry = manager.create(buckets.make("empty"))
    assert entry.object_count == 0 and entry.verification.status == "passed"
    assert entry.locations == ["local", "s3"]
    result = manager.restore(entry.name, buckets.name("empty-copy"))
    assert (result.restored, result.skipped, result.failed) == (0, 0, 0)
    assert buckets.contents(buckets.name("empty-copy")) == {}
