"""A recovery's bucket restore on real S3 servers: every application bucket at once under one
snapshot lock, each counted; a bucket that cannot come back is named only after the others are
back, and the lock is free again either way; blobs only the off-site server (a second real S3
server) holds are fetched many at a time, bounded."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from autograph.dr.buckets.snapshots.manager import SnapshotManager
from autograph.dr.buckets.snapshots.reading import PREFETCH_THREADS, REMOTE_PREFETCH_THREADS
from autograph.dr.buckets.snapshots.store import SnapshotStore
from autograph.dr.ops.locks import acquire, holder
from autograph.dr.recovery import backups as recovery_backups
from autograph.dr.storage.crypto import new_key
from autograph.errors import Conflict, OperationFailed
from autograph.stack.lifecycle import Stack
from bucketbackups import Buckets, S3Proxy, bucket_settings
from offsiteutil import OffsiteServer

DIAGRAMS = {f"d/{i}.json": f'{{"n": {i}}}'.encode() for i in range(40)}
EXPORTS = {f"e/{i}.bin": bytes([i]) * 3000 for i in range(25)}


@pytest.fixture
def buckets(infra_stack: Stack, tmp_path: Path) -> Iterator[Buckets]:
    with bucket_settings(infra_stack, tmp_path) as handle:
        yield handle


def _snapshot_two(infra_stack: Stack, buckets: Buckets) -> tuple[list[str], list[str]]:
    """Two application buckets with contents, snapshotted, then emptied (the disaster)."""
    manager = SnapshotManager(buckets.settings, infra_stack.creds)
    names, plans = [], []
    for bucket, objects in zip(buckets.settings.app_buckets[:2], (DIAGRAMS, EXPORTS),
                               strict=True):
        buckets.make(bucket.split("-")[1], objects)
        plans.append(manager.take(bucket).snapshot.name)
        for key in objects:
            buckets.client.delete_object(Bucket=bucket, Key=key)
        names.append(bucket)
    return names, plans


def test_every_bucket_is_restored_under_one_lock_and_the_lock_is_freed(
        infra_stack: Stack, buckets: Buckets) -> None:
    (diagrams, exports), (snap_d, snap_e) = _snapshot_two(infra_stack, buckets)
    buckets.put(exports, "e/0.bin", b"written after the disaster")  # kept: overwrite=false
    handle = SimpleNamespace(settings=buckets.settings, creds=infra_stack.creds)

    done = recovery_backups.restore_buckets(  # type: ignore[arg-type]
        handle, {diagrams: [snap_d], exports: [snap_e], buckets.settings.app_buckets[2]: []})

    assert done["buckets"][diagrams]["restored"] == len(DIAGRAMS)
    assert done["buckets"][exports]["restored"] == len(EXPORTS) - 1
    assert done["buckets"][exports]["skipped"] == 1
    assert sorted(buckets.etags(diagrams)) == sorted(DIAGRAMS)
    assert buckets.contents(exports)["e/0.bin"][0] == b"written after the disaster"
    for bucket in (diagrams, exports):  # each bucket's own restore interval is recorded
        record = done["buckets"][bucket]
        assert done["started_at"] <= record["started_at"] <= record["finished_at"]
        assert record["finished_at"] <= done["finished_at"]
    assert any("left as found" in issue for issue in done["issues"])
    assert holder(buckets.settings.backups_dir, "snapshot") is None


def test_a_bucket_that_cannot_be_restored_is_named_after_the_others_are_back(
        infra_stack: Stack, buckets: Buckets) -> None:
    (diagrams, exports), (_snap_d, snap_e) = _snapshot_two(infra_stack, buckets)
    handle = SimpleNamespace(settings=buckets.settings, creds=infra_stack.creds)
    missing = f"snap_{diagrams}_20260101T000000000Z"

    with pytest.raises(OperationFailed) as raised:
        recovery_backups.restore_buckets(  # type: ignore[arg-type]
            handle, {diagrams: [missing], exports: [snap_e]})

    assert raised.value.message.startswith(f"bucket {diagrams}: no backup could be restored")
    assert exports not in raised.value.message
    assert sorted(buckets.etags(exports)) == sorted(EXPORTS)
    assert holder(buckets.settings.backups_dir, "snapshot") is None


def test_a_scheduled_archive_running_holds_the_restore_back_and_nothing_is_written(
        infra_stack: Stack, buckets: Buckets, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both locks are held for the whole restore (services may be starting meanwhile: no
    scheduled archive or snapshot may record a bucket half restored), so a running archive
    backup is waited for, then named."""
    (diagrams, _exports), (snap_d, _snap_e) = _snapshot_two(infra_stack, buckets)
    handle = SimpleNamespace(settings=buckets.settings, creds=infra_stack.creds)
    monkeypatch.setattr(recovery_backups, "LOCK_WAIT", 1.0)
    other = acquire(buckets.settings.backups_dir, "bucket", "backup", "scheduled")
    try:
        with pytest.raises(Conflict) as raised:
            recovery_backups.restore_buckets(handle, {diagrams: [snap_d]})  # type: ignore[arg-type]
    finally:
        other.release()
    assert "bucket backup of scheduled is already running" in raised.value.message
    assert buckets.etags(diagrams) == {}
    assert holder(buckets.settings.backups_dir, "snapshot") is None


def test_off_site_blobs_are_fetched_many_at_a_time_and_restore_byte_for_byte(
        infra_stack: Stack, buckets: Buckets, offsite_server: OffsiteServer) -> None:
    proxy = S3Proxy(offsite_server.endpoint)  # counts the GETs in flight to the off-site server
    proxy.get_delay = 0.05  # a remote round trip: fetched three at a time they never overlap more
    settings = buckets.settings.model_copy(update={
        "offsite_s3_endpoint": proxy.url, "offsite_s3_prefix": f"t-{buckets.token}/",
        "offsite_s3_access_key": SecretStr(offsite_server.access_key),
        "offsite_s3_secret_key": SecretStr(offsite_server.secret_key),
        "offsite_key": SecretStr(new_key().export())})
    try:
        taker = SnapshotManager(settings, infra_stack.creds)
        bucket = buckets.make_app_bucket(DIAGRAMS)
        taken = taker.take(bucket)
        assert "offsite" in taken.tiers  # shipped with its blobs as it was committed
        name = taken.snapshot.name
        shutil.rmtree(taker.store.blobs_dir)  # the machine is gone: only off-site is left
        for key in DIAGRAMS:
            buckets.client.delete_object(Bucket=bucket, Key=key)
        restorer = SnapshotManager(settings, infra_stack.creds,
                                   store=SnapshotStore(settings, infra_stack.creds, with_s3=False))
        proxy.peak_gets = 0

        done = restorer.restore(name)

        assert done.blobs_from == {"offsite": len(DIAGRAMS)}
        assert done.restored == len(DIAGRAMS)
        assert {k: v[0] for k, v in buckets.contents(bucket).items()} == DIAGRAMS
        assert PREFETCH_THREADS < proxy.peak_gets <= REMOTE_PREFETCH_THREADS
    finally:
        proxy.close()
