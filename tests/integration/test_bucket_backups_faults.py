"""Bucket backups under faults, on the real S3 server: S3 lost mid-backup, a damaged archive,
an object the target keeps refusing, the secondary tier down, bad input."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autograph.dr.buckets.manager import MinIOBucketBackupManager
from autograph.errors import DependencyDown, IntegrityError, InvalidInput, NotFound
from autograph.s3.bulk import S3Client, S3Endpoint
from autograph.stack.lifecycle import Stack
from bucketbackups import Buckets, S3Proxy, bucket_settings
from dbbackups import recorded_events
from stackutil import free_port_block


@pytest.fixture
def buckets(infra_stack: Stack, tmp_path: Path) -> Iterator[Buckets]:
    with bucket_settings(infra_stack, tmp_path) as handle:
        yield handle


@pytest.fixture
def manager(infra_stack: Stack, buckets: Buckets) -> MinIOBucketBackupManager:
    return MinIOBucketBackupManager(buckets.settings, infra_stack.creds)


@pytest.fixture
def proxy(infra_stack: Stack) -> Iterator[S3Proxy]:
    front = S3Proxy(infra_stack.settings.s3_url)
    yield front
    front.close()


def _through(proxy: S3Proxy, manager: MinIOBucketBackupManager,
             stack: Stack) -> MinIOBucketBackupManager:
    """The same manager, but reaching the application S3 server through ``proxy``."""
    endpoint = S3Endpoint(proxy.url, stack.creds.s3_access_key, stack.creds.s3_secret_key)
    return MinIOBucketBackupManager(manager.settings, stack.creds, catalog=manager.catalog,
                                    source=S3Client(endpoint, timeout=10.0, retries=2))


def test_s3_lost_mid_backup_leaves_no_trace_and_calls_the_failure_hook(
        manager: MinIOBucketBackupManager, buckets: Buckets, proxy: S3Proxy,
        infra_stack: Stack) -> None:
    source = buckets.make("src", {f"o{i:03d}": os.urandom(20_000) for i in range(60)})
    earlier = manager.create(source, "earlier")
    cut = _through(proxy, manager, infra_stack)
    cut.workers = 2
    proxy.cut_after(25)  # the listing and a couple of dozen objects, then S3 is gone
    with recorded_events() as events, pytest.raises(DependencyDown):
        cut.create(source, "doomed")
    assert proxy.requests >= 20
    assert [(e.event, e.name) for e in events] == [("backup_failed", "doomed")]
    assert [b.name for b in manager.list().backups] == ["earlier"]
    local = sorted(p.name for p in manager.catalog.local.root.iterdir())
    assert local == ["earlier.manifest.json", "earlier.tar.gz"]
    stored = buckets.client.list_objects_v2(Bucket=buckets.settings.backup_bucket_objects)
    assert sorted(o["Key"] for o in stored.get("Contents", [])) == local
    uploads = buckets.client.list_multipart_uploads(Bucket=buckets.settings.backup_bucket_objects)
    assert uploads.get("Uploads", []) == []
    assert manager.verify(earlier.name).verification.status == "passed"


def test_keep_alive_links_the_server_closed_are_replaced_without_failing(
        buckets: Buckets, proxy: S3Proxy, infra_stack: Stack) -> None:
    source = buckets.make("src", {f"k{i}": bytes([i]) * 10 for i in range(12)})
    client = S3Client(S3Endpoint(proxy.url, infra_stack.creds.s3_access_key,
                                 infra_stack.creds.s3_secret_key), retries=0)
    proxy.drop_idle = True
    bodies = [client.get_object(source, f"k{i}").read() for i in range(12)]
    assert bodies == [bytes([i]) * 10 for i in range(12)]
    assert [o.key for o in client.list_objects(source)] == sorted(f"k{i}" for i in range(12))


def test_a_multipart_upload_through_closed_keep_alive_links_sends_each_post_once(
        buckets: Buckets, proxy: S3Proxy, infra_stack: Stack) -> None:
    """The server closes every link after one answer: the PUTs of the parts find their pooled
    link dead and go again on a new one; the POSTs (create, complete) are not idempotent, so
    they take a fresh link each and reach the server exactly once."""
    target = buckets.make("dst", {})
    client = S3Client(S3Endpoint(proxy.url, infra_stack.creds.s3_access_key,
                                 infra_stack.creds.s3_secret_key), retries=0)
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(5 * 1024 * 1024), b"tail"]
    proxy.drop_idle = True
    client.put_object(target, "warm", b"x")  # leaves a pooled link the server has closed
    upload = client.create_multipart(target, "big")
    etags = [client.upload_part(target, "big", upload, n, part)
             for n, part in enumerate(parts, start=1)]
    client.complete_multipart(target, "big", upload, etags)
    assert proxy.methods.count("POST") == 2
    assert proxy.methods.count("PUT") == 1 + len(parts)  # a dead link never reaches the server
    stored = buckets.client.get_object(Bucket=target, Key="big")["Body"].read()
    assert stored == b"".join(parts)


def _truncate(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]


@pytest.mark.parametrize("damage", [_truncate, _flip], ids=["truncated", "one-byte-flipped"])
def test_a_damaged_archive_fails_verify_and_restore_refuses_before_writing(
        manager: MinIOBucketBackupManager, buckets: Buckets,
        damage: Callable[[bytes], bytes]) -> None:
    source = buckets.make("src", {f"o{i}": os.urandom(50_000) for i in range(8)})
    entry = manager.create(source)
    local = manager.catalog.local.path(entry.artifact)
    broken = damage(local.read_bytes())
    local.write_bytes(broken)
    buckets.client.put_object(Bucket=buckets.settings.backup_bucket_objects,
                              Key=entry.artifact, Body=broken)

    with recorded_events() as events, pytest.raises(IntegrityError):
        manager.verify(entry.name)
    assert [e.event for e in events] == ["verification_failed"]
    if damage is _flip:  # a truncated copy no longer lists; a flipped one records the failure
        assert manager.get(entry.name).verification.status == "failed"

    target = buckets.name("restore-here")
    with recorded_events() as events, pytest.raises(IntegrityError,
                                                    match=r"no intact copy|is damaged"):
        manager.restore(entry.name, target)
    names = {b["Name"] for b in buckets.client.list_buckets()["Buckets"]}
    assert target not in names
    assert [e.event for e in events] == ["restore_failed"]


def test_an_object_the_target_keeps_refusing_is_retried_then_reported(
        manager: MinIOBucketBackupManager, buckets: Buckets, proxy: S3Proxy,
        infra_stack: Stack) -> None:
    source = buckets.make("src", {"good-1": b"1", "refused": b"2", "good-2": b"3"})
    entry = manager.create(source)
    proxy.fail_puts("refused")
    with recorded_events() as events:
        result = _through(proxy, manager, infra_stack).restore(entry.name, buckets.name("dst"))
    assert (result.restored, result.skipped, result.failed) == (2, 0, 1)
    assert list(result.failed_keys) == ["refused"]
    assert "500" in result.failed_keys["refused"]
    assert proxy.put_attempts["refused"] == 3
    assert set(buckets.contents(buckets.name("dst"))) == {"good-1", "good-2"}
    assert [e.event for e in events] == ["restore_failed"]


def test_the_secondary_tier_down_keeps_the_local_copy_and_sync_uploads_it(
        manager: MinIOBucketBackupManager, buckets: Buckets, infra_stack: Stack) -> None:
    source = buckets.make("src", {"a": b"1"})
    dead = buckets.settings.model_copy(
        update={"backup_s3_endpoint": f"http://127.0.0.1:{free_port_block()}"})
    offline = MinIOBucketBackupManager(dead, infra_stack.creds)
    entry = offline.create(source, "while_s3_down")
    assert entry.locations == ["local"] and entry.s3_copy == "missing" and entry.s3_error
    assert entry.verification.status == "passed"
    assert manager.sync().uploaded == ["while_s3_down"]
    assert manager.get("while_s3_down").locations == ["local", "s3"]


@pytest.mark.parametrize("bucket", ["", "ab", "UPPER", "a" * 64, "under_score", "-dash",
                                    "dot..dot", "192.168.1.1", "../etc", "sp ace"])
def test_invalid_bucket_names_are_refused(manager: MinIOBucketBackupManager,
                                          bucket: str) -> None:
    with pytest.raises(InvalidInput):
        manager.create(bucket)
    with pytest.raises(InvalidInput):
        manager.restore("some_backup", bucket)


@pytest.mark.parametrize("name", ["", "../../etc/passwd", "a/b", "bäckup", "a" * 200, ".hidden"])
def test_invalid_backup_names_are_refused(manager: MinIOBucketBackupManager, buckets: Buckets,
                                          name: str) -> None:
    source = buckets.make("src")
    with pytest.raises(InvalidInput):
        manager.create(source, name)
    with pytest.raises(InvalidInput):
        manager.restore(name)


def test_backup_buckets_are_neither_sources_nor_targets_and_unknown_names_are_404(
        manager: MinIOBucketBackupManager, buckets: Buckets) -> None:
    for bucket in (buckets.settings.backup_bucket_objects,
                   buckets.settings.backup_bucket_database):
        with pytest.raises(InvalidInput, match="holds backups"):
            manager.restore("anything", bucket)
        with pytest.raises(InvalidInput, match="holds backups"):
            manager.create(bucket)
    with pytest.raises(NotFound):
        manager.restore("no_such_backup", buckets.name("dst"))
    with pytest.raises(NotFound):
        manager.create(buckets.name("missing"))
