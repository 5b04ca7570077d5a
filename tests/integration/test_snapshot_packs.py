"""Snapshot packs on the real S3 server: a first snapshot sends its small blobs to the S3 tier
in a few packs, restores read them back byte for byte, a pack without an index does not exist
for readers (pruning collects it), a damaged pack index is reported as missing blobs, and an
incremental snapshot's few changes stay loose."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autograph.dr.buckets.snapshots.blobs import IN_MEMORY
from autograph.dr.buckets.snapshots.manager import SnapshotManager
from autograph.dr.buckets.snapshots.packs import IDX_SUFFIX, PACK_MIN_BLOBS, PACK_SUFFIX
from autograph.errors import IntegrityError, NotFound
from autograph.stack.lifecycle import Stack
from bucketbackups import Buckets, bucket_settings


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def buckets(infra_stack: Stack, tmp_path: Path) -> Iterator[Buckets]:
    with bucket_settings(infra_stack, tmp_path) as handle:
        yield handle


def _manager(stack: Stack, buckets: Buckets, clock: Clock) -> SnapshotManager:
    """A manager with nothing cached: what the next CLI process sees."""
    return SnapshotManager(buckets.settings, stack.creds, clock=clock)


def _objects(count: int) -> dict[str, object]:
    rnd = random.Random(5)
    found: dict[str, object] = {}
    for i in range(count):
        size = rnd.randint(200, 6000)
        found[f"k/{i:03d}.json" if i % 2 else f"k/{i:03d}.bin"] = (
            json.dumps({"i": i, "pad": "x" * size}).encode() if i % 2 else os.urandom(size))
    return found


def _keys(buckets: Buckets, area: str) -> list[str]:
    bucket = buckets.settings.backup_bucket_objects
    pages = buckets.client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"snapshots/{area}/")
    return sorted(o["Key"].rsplit("/", 1)[1] for p in pages for o in p.get("Contents", []))


def _clear(buckets: Buckets, bucket: str) -> None:
    for key in buckets.etags(bucket):
        buckets.client.delete_object(Bucket=bucket, Key=key)


def test_small_blobs_travel_in_packs_and_restore_byte_for_byte_from_them(
        infra_stack: Stack, buckets: Buckets) -> None:
    clock = Clock()
    big = os.urandom(IN_MEMORY + 4096)  # streamed: uploaded loose
    bucket = buckets.make_app_bucket({**_objects(60), "big.bin": big, "same": b"x" * 500,
                               "same-too": b"x" * 500})
    result = _manager(infra_stack, buckets, clock).take(bucket)
    assert result.tiers == ["local", "s3"] and result.snapshot.new_blobs == 62
    packs = _keys(buckets, "packs")
    assert len(packs) == 2 and packs[0][:64] == packs[1][:64]
    assert {p[64:] for p in packs} == {IDX_SUFFIX, PACK_SUFFIX}
    big_blob = next(o.blob_key for o in result.snapshot.objects if o.key == "big.bin")
    assert _keys(buckets, "blobs") == [big_blob]  # one PUT for 61 small blobs, one for big

    fresh = _manager(infra_stack, buckets, clock)
    assert fresh.verify(result.snapshot.name, deep=True)["status"] == "passed"
    for path in fresh.store.blobs_dir.iterdir():  # only the S3 tier is left to read
        path.unlink()
    before = buckets.contents(bucket)
    _clear(buckets, bucket)
    restored = _manager(infra_stack, buckets, clock).restore(result.snapshot.name)
    assert restored.blobs_from == {"s3": 62}
    assert buckets.contents(bucket) == before


def test_an_incremental_snapshot_with_few_changes_stores_them_loose(
        infra_stack: Stack, buckets: Buckets) -> None:
    clock = Clock()
    bucket = buckets.make_app_bucket(_objects(20))
    manager = _manager(infra_stack, buckets, clock)
    manager.take(bucket)
    packs, loose = _keys(buckets, "packs"), _keys(buckets, "blobs")
    for i in range(PACK_MIN_BLOBS - 1):
        buckets.put(bucket, f"k/{i:03d}.bin", os.urandom(300 + i))
    clock.now += timedelta(minutes=2)
    second = manager.take(bucket)
    assert second.snapshot.new_blobs == PACK_MIN_BLOBS - 1
    assert _keys(buckets, "packs") == packs
    assert len(_keys(buckets, "blobs")) == len(loose) + PACK_MIN_BLOBS - 1
    for path in manager.store.blobs_dir.iterdir():
        path.unlink()
    before = buckets.contents(bucket)
    _clear(buckets, bucket)
    _manager(infra_stack, buckets, clock).restore(second.snapshot.name)
    assert buckets.contents(bucket) == before


def test_a_pack_without_index_is_invisible_and_pruning_collects_it(
        infra_stack: Stack, buckets: Buckets) -> None:
    clock = Clock()
    bucket = buckets.make_app_bucket(_objects(30))
    snap = _manager(infra_stack, buckets, clock).take(bucket).snapshot
    orphan = "0" * 64 + PACK_SUFFIX  # a snapshot killed between the pack and its index
    buckets.client.put_object(Bucket=buckets.settings.backup_bucket_objects,
                              Key=f"snapshots/packs/{orphan}", Body=b"half a snapshot")
    manager = _manager(infra_stack, buckets, clock)
    assert manager.store.remote is not None
    listed = {o.key for o in manager.store.remote.blobs.list()}
    assert listed == {o.blob_key for o in snap.objects}
    report = manager.prune()
    assert report.errors == [] and report.blobs_removed == {"local": 0, "s3": 0}
    assert orphan not in _keys(buckets, "packs") and len(_keys(buckets, "packs")) == 2

    dropped, kept = snap.objects[3], snap.objects[4]
    long_lived = _manager(infra_stack, buckets, clock).store.remote  # the outbox's, say
    assert long_lived is not None and len(long_lived.blobs.list()) == len(listed)
    manager.store.remote.blobs.delete(dropped.blob_key)  # its pack's index is rewritten
    with pytest.raises(NotFound):  # the long-lived store does not trust its stale map
        long_lived.blobs.stat(dropped.blob_key)
    assert long_lived.blobs.stat(kept.blob_key).size == kept.blob_size
    after = {o.key for o in _manager(infra_stack, buckets, clock).store.remote.blobs.list()}
    assert after == listed - {dropped.blob_key}
    assert _manager(infra_stack, buckets, clock).verify(snap.name)["status"] == "degraded"


def test_a_damaged_pack_index_counts_as_missing_blobs_and_nothing_is_restored(
        infra_stack: Stack, buckets: Buckets) -> None:
    clock = Clock()
    bucket = buckets.make_app_bucket(_objects(30))
    manager = _manager(infra_stack, buckets, clock)
    snap = manager.take(bucket).snapshot
    index = next(k for k in _keys(buckets, "packs") if k.endswith(IDX_SUFFIX))
    buckets.client.put_object(Bucket=buckets.settings.backup_bucket_objects,
                              Key=f"snapshots/packs/{index}", Body=b"{not json")
    assert _manager(infra_stack, buckets, clock).verify(snap.name)["status"] == "degraded"
    for path in manager.store.blobs_dir.iterdir():
        path.unlink()
    _clear(buckets, bucket)
    with pytest.raises(IntegrityError, match="nothing was restored"):
        _manager(infra_stack, buckets, clock).restore(snap.name)
    assert buckets.etags(bucket) == {}


def test_blobs_an_offline_snapshot_could_not_copy_follow_in_a_pack_once_checked(
        infra_stack: Stack, buckets: Buckets) -> None:
    clock = Clock()
    bucket = buckets.make_app_bucket(_objects(20))
    down = buckets.settings.model_copy(update={"backup_s3_endpoint": "http://127.0.0.1:9"})
    offline = SnapshotManager(down, infra_stack.creds, clock=clock).take(bucket)
    assert offline.tiers == ["local"] and offline.s3_error
    victim = offline.snapshot.objects[0]  # bit rot: the catch-up must not copy it
    path = _manager(infra_stack, buckets, clock).store.blob_path(victim.blob_key)
    good = path.read_bytes()
    path.write_bytes(bytes([good[0] ^ 0xFF]) + good[1:])
    clock.now += timedelta(minutes=2)
    refused = _manager(infra_stack, buckets, clock).take(bucket)
    assert refused.tiers == ["local"] and "damaged" in (refused.s3_error or "")
    path.write_bytes(good)
    clock.now += timedelta(minutes=2)
    online = _manager(infra_stack, buckets, clock).take(bucket)
    assert online.tiers == ["local", "s3"] and online.snapshot.new_blobs == 0
    assert len(_keys(buckets, "packs")) >= 2 and _keys(buckets, "blobs") == []
    manager = _manager(infra_stack, buckets, clock)
    for blob in manager.store.blobs_dir.iterdir():
        blob.unlink()
    before = buckets.contents(bucket)
    _clear(buckets, bucket)
    assert manager.restore(online.snapshot.name).blobs_from == {"s3": 20}
    assert buckets.contents(bucket) == before
