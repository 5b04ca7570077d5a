"""Incremental bucket snapshots on the real S3 server: only changes are stored, each snapshot
restores as the full state of its time, damage is caught before anything is written, pruning
keeps what restores need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from autograph.dr.buckets.snapshots.blobs import IN_MEMORY
from autograph.dr.buckets.snapshots.manager import SnapshotManager
from autograph.dr.buckets.snapshots.store import INDEX_SUFFIX
from autograph.dr.scheduler import Scheduler
from autograph.dr.schedules import snapshot_schedule
from autograph.errors import Conflict, IntegrityError, InvalidInput, NotFound
from autograph.stack.lifecycle import Stack
from bucketbackups import Buckets, bucket_settings
from dbbackups import recorded_events
from stackutil import settings_env

FIRST = {
    "a.json": (b'{"v": 1}', "application/json", {"owner": "alice"}),
    "dir/b.bin": (os.urandom(5000), "application/octet-stream", {}),
    "same-1": b"identical bytes",
    "same-2": b"identical bytes",
    "ünï/ключ": b"unicode",
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def buckets(infra_stack: Stack, tmp_path: Path) -> Iterator[Buckets]:
    with bucket_settings(infra_stack, tmp_path) as handle:
        yield handle


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def manager(infra_stack: Stack, buckets: Buckets, clock: Clock) -> SnapshotManager:
    return SnapshotManager(buckets.settings, infra_stack.creds, clock=clock)


def _clear(buckets: Buckets, bucket: str) -> None:
    for key in buckets.etags(bucket):
        buckets.client.delete_object(Bucket=bucket, Key=key)


def test_a_second_snapshot_stores_only_what_changed(manager: SnapshotManager,
                                                   buckets: Buckets, clock: Clock) -> None:
    bucket = buckets.make_app_bucket(FIRST)
    first = manager.take(bucket)
    assert first.tiers == ["local", "s3"] and first.s3_error is None
    assert len(first.snapshot.objects) == 5
    assert first.snapshot.new_blobs == 4  # two keys share their bytes
    clock.advance(120)
    buckets.put(bucket, "a.json", (b'{"v": 2}', "application/json", {"owner": "bob"}))
    buckets.put(bucket, "new.txt", b"added")
    buckets.client.delete_object(Bucket=bucket, Key="same-2")
    second = manager.take(bucket)
    assert second.snapshot.parent == first.snapshot.name
    assert second.snapshot.new_blobs == 2 and second.reused == 3
    assert sorted(o.key for o in second.snapshot.objects) == [
        "a.json", "dir/b.bin", "new.txt", "same-1", "ünï/ключ"]
    listed = manager.list(bucket)
    assert [r["name"] for r in listed["snapshots"]] == [second.snapshot.name,
                                                        first.snapshot.name]
    assert listed["snapshots"][0]["locations"] == ["local", "s3"]


def test_each_snapshot_restores_the_full_state_of_its_time(manager: SnapshotManager,
                                                           buckets: Buckets,
                                                           clock: Clock) -> None:
    bucket = buckets.make_app_bucket(FIRST)
    at_first = buckets.contents(bucket)
    first = manager.take(bucket).snapshot
    clock.advance(120)
    buckets.put(bucket, "a.json", (b'{"v": 2}', "application/json", {"owner": "bob"}))
    buckets.put(bucket, "later", b"after the first snapshot")
    manager.take(bucket)
    _clear(buckets, bucket)
    result = manager.restore(first.name)
    assert (result.restored, result.skipped, result.failed) == (5, 0, {})
    assert buckets.contents(bucket) == at_first  # bytes, content type, metadata


def test_overwrite_false_keeps_existing_keys_and_reports_extra_ones(
        manager: SnapshotManager, buckets: Buckets) -> None:
    bucket = buckets.make_app_bucket(FIRST)
    snap = manager.take(bucket).snapshot
    buckets.put(bucket, "a.json", b"changed since")
    buckets.put(bucket, "extra", b"not in the snapshot")
    buckets.client.delete_object(Bucket=bucket, Key="dir/b.bin")
    before = buckets.etags(bucket)
    result = manager.restore(snap.name, overwrite=False)
    assert (result.restored, result.skipped, result.extra) == (1, 4, 1)
    after = buckets.etags(bucket)
    assert {k: after[k] for k in before} == before
    assert "dir/b.bin" in after
    replaced = manager.restore(snap.name, overwrite=True)
    assert replaced.restored == 5
    assert buckets.contents(bucket)["a.json"][0] == b'{"v": 1}'


def test_a_damaged_local_blob_is_read_from_s3_and_a_lost_one_refuses_before_writing(
        manager: SnapshotManager, buckets: Buckets) -> None:
    bucket = buckets.make_app_bucket(FIRST)
    snap = manager.take(bucket).snapshot
    record = next(o for o in snap.objects if o.key == "dir/b.bin")
    path = manager.store.blob_path(record.sha256)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert manager.verify(snap.name, deep=True)["status"] == "degraded"
    _clear(buckets, bucket)
    manager.restore(snap.name)
    assert buckets.contents(bucket)["dir/b.bin"][0] == FIRST["dir/b.bin"][0]

    assert manager.store.remote is not None
    manager.store.remote.blobs.delete(record.sha256)
    path.unlink()
    assert manager.verify(snap.name)["status"] == "failed"
    _clear(buckets, bucket)
    with pytest.raises(IntegrityError, match="nothing was restored"):
        manager.restore(snap.name)
    assert buckets.etags(bucket) == {}


def test_s3_tier_unreachable_commits_locally_and_the_next_snapshot_uploads_the_blobs(
        infra_stack: Stack, buckets: Buckets, clock: Clock) -> None:
    bucket = buckets.make_app_bucket(FIRST)
    down = buckets.settings.model_copy(update={"backup_s3_endpoint": "http://127.0.0.1:9"})
    offline = SnapshotManager(down, infra_stack.creds, clock=clock)
    taken = offline.take(bucket)
    assert taken.tiers == ["local"] and taken.s3_error
    clock.advance(60)
    online = SnapshotManager(buckets.settings, infra_stack.creds, clock=clock)
    again = online.take(bucket)
    assert again.tiers == ["local", "s3"]
    assert again.snapshot.new_blobs == 0
    assert online.verify(again.snapshot.name)["status"] == "passed"


def test_pruning_thins_old_snapshots_and_keeps_every_blob_a_kept_one_needs(
        manager: SnapshotManager, buckets: Buckets, clock: Clock) -> None:
    bucket = buckets.make_app_bucket({"k": b"version 0"})
    names = []
    for step in range(6):  # one every 20 minutes, each with new bytes for "k"
        buckets.put(bucket, "k", f"version {step}".encode())
        names.append(manager.take(bucket).snapshot.name)
        clock.advance(20 * 60)
    clock.advance(3 * 3600)  # all older than the keep-all hour now
    report = manager.prune()
    kept = sorted(d.name for d in report.decisions if d.keep)
    assert names[-1] in kept and len(kept) == 2  # the newest of each of the two hours
    assert set(report.removed) == set(names) - set(kept)
    assert report.blobs_removed == {"local": 4, "s3": 4}
    for name in kept:
        assert manager.verify(name, deep=True)["status"] == "passed"
    assert manager.list(bucket)["snapshots"][0]["name"] == names[-1]


def test_pruning_honours_keep_within_and_keep_hourly_in_both_tiers(
        infra_stack: Stack, buckets: Buckets, clock: Clock) -> None:
    settings = buckets.settings.model_copy(update={
        "snapshot_keep_all_seconds": 30 * 60, "snapshot_keep_hourly": 2,
        "snapshot_keep_daily": 0})
    manager = SnapshotManager(settings, infra_stack.creds, clock=clock)
    bucket = buckets.make_app_bucket({"k": b"version 0"})
    names = []
    for step in range(8):  # 12:00, 12:20 … 14:20, each with new bytes for "k"
        buckets.put(bucket, "k", f"version {step}".encode())
        names.append(manager.take(bucket).snapshot.name)
        clock.advance(20 * 60)
    clock.advance(-10 * 60)  # now 14:30
    plan = {d.name: d for d in manager.prune(dry_run=True).decisions}
    assert plan[names[7]].reasons == ["last (1 of 1)", "within the last 30m",
                                      "hourly 2026-03-01T14 (1 of 2)"]
    assert plan[names[6]].reasons == ["within the last 30m"]  # 14:00: exactly 30 min old
    assert plan[names[5]].reasons == ["hourly 2026-03-01T13 (2 of 2)"]  # 13:40
    assert not plan[names[4]].keep and "older than 30m" in plan[names[4]].reasons
    expected = set(names[5:])
    report = manager.prune()
    assert {d.name for d in report.decisions if d.outcome == "removed"} == set(names) - expected
    assert report.blobs_removed == {"local": 5, "s3": 5}  # the bytes only they held
    for tier in manager.store.tiers():  # the indexes went from each tier, the kept ones stay
        assert {o.key.removesuffix(INDEX_SUFFIX) for o in tier.index.list("snap_")} == expected
    for name in expected:
        assert manager.verify(name, deep=True)["status"] == "passed"
    again = _cli(settings, "prune", "--dry-run", "--json")  # its clock: now, hours later
    assert again.returncode == 0, again.stderr
    shown = json.loads(again.stdout)
    assert set(shown["kept"]) | set(shown["removed"]) == expected and shown["errors"] == []
    assert shown["kept"][names[7]].startswith("last (1 of 1)")
    assert {d["kind"] for d in shown["decisions"]} == {"snapshot"} and shown["dry_run"]


def test_bad_input_and_a_second_operation(manager: SnapshotManager, buckets: Buckets) -> None:
    bucket = buckets.make_app_bucket({"k": b"v"})
    with pytest.raises(InvalidInput):
        manager.take("not-an-app-bucket")
    with pytest.raises(InvalidInput):
        manager.restore("../etc/passwd")
    with pytest.raises(NotFound):
        manager.restore(f"snap_{bucket}_20260101T000000000Z")
    snap = manager.take(bucket).snapshot
    with pytest.raises(InvalidInput, match="holds backups"):
        manager.restore(snap.name, target_bucket=buckets.settings.backup_bucket_objects)
    with manager.acquire("snapshot", bucket), pytest.raises(Conflict):
        manager.take(bucket)
    assert (manager.store.local.index.list()[0].key == snap.name + INDEX_SUFFIX)


def test_the_scheduler_snapshots_each_bucket_once_per_interval(
        infra_stack: Stack, manager: SnapshotManager, buckets: Buckets, clock: Clock) -> None:
    for bucket in buckets.settings.app_buckets:
        buckets.client.create_bucket(Bucket=bucket)
        buckets.made.append(bucket)
        buckets.put(bucket, "k", bucket.encode())
    settings = buckets.settings.model_copy(update={"snapshot_interval_seconds": 120})

    def scheduler() -> Scheduler:  # the gateway's start-up delay does not hold snapshots back
        return Scheduler([snapshot_schedule(settings, infra_stack.creds, clock)],
                         settings.backups_dir, clock=clock, startup_delay=30, retry=3600)

    running = scheduler()
    first = running.tick()
    assert [r.results for r in first] == [dict.fromkeys(settings.app_buckets, "succeeded")]
    assert first[0].prune_error is None and len(manager.list()["snapshots"]) == 3
    assert {p.next_run_at for p in running.plan()} == {clock() + timedelta(seconds=120)}
    clock.advance(30)
    assert running.tick() == [] and scheduler().tick() == []  # nothing due, even after a restart
    assert len(manager.list()["snapshots"]) == 3
    clock.advance(90)
    assert [r.results for r in running.tick()] == [
        dict.fromkeys(settings.app_buckets, "succeeded")]
    names = [r["name"] for r in manager.list()["snapshots"]]
    assert len(names) == 6
    assert {manager.latest(b) for b in buckets.settings.app_buckets} == set(names[:3])


def test_a_failed_scheduled_snapshot_is_retried_one_interval_later_without_a_prune(
        infra_stack: Stack, buckets: Buckets, clock: Clock) -> None:
    missing = buckets.settings.app_buckets[1]  # never created
    settings = buckets.settings.model_copy(update={"snapshot_interval_seconds": 120,
                                                   "app_buckets": (missing,)})
    scheduler = Scheduler([snapshot_schedule(settings, infra_stack.creds, clock)],
                          settings.backups_dir, clock=clock, startup_delay=30, retry=3600)
    [record] = scheduler.tick()
    assert record.results == {missing: "failed"} and missing in record.errors[missing]
    assert record.pruned == [] and record.prune_error is None
    [plan] = scheduler.plan()
    assert plan.retrying_after_failure and plan.next_run_at == clock() + timedelta(seconds=120)
    clock.advance(119)
    assert scheduler.tick() == []
    clock.advance(1)
    assert [r.results for r in scheduler.tick()] == [{missing: "failed"}]


def _cli(settings: object, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings)}  # type: ignore[arg-type]
    return subprocess.run([sys.executable, "-m", "autograph.cli.main", "backup", "snapshots",
                           *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_takes_lists_and_restores_the_newest_snapshot_of_a_bucket(
        buckets: Buckets) -> None:
    bucket = buckets.make_app_bucket(FIRST)
    taken = _cli(buckets.settings, "create", bucket, "--json")
    assert taken.returncode == 0, taken.stderr
    name = json.loads(taken.stdout)[0]["name"]
    listed = json.loads(_cli(buckets.settings, "list", "--json").stdout)
    assert [r["name"] for r in listed["snapshots"]] == [name]
    _clear(buckets, bucket)
    restored = _cli(buckets.settings, "restore", "--bucket", bucket, "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["restored"] == 5
    assert sorted(buckets.etags(bucket)) == sorted(FIRST)
    both = _cli(buckets.settings, "restore", name, "--bucket", bucket)
    assert both.returncode != 0 and "Traceback" not in both.stderr
    assert len(both.stderr.strip().splitlines()) == 1
    bad = _cli(buckets.settings, "verify", "../../etc/passwd")
    assert bad.returncode != 0 and "invalid snapshot name" in bad.stderr


def test_a_mass_deletion_is_flagged_and_recovery_plans_from_the_snapshot_before_it(
        infra_stack: Stack, manager: SnapshotManager, buckets: Buckets, clock: Clock) -> None:
    from autograph.dr.recovery import backups as recovery_backups
    from autograph.dr.recovery.options import RecoveryOptions

    bucket = buckets.make_app_bucket(FIRST)
    good = manager.take(bucket).snapshot
    assert good.shrunk is None
    clock.advance(120)
    _clear(buckets, bucket)
    with recorded_events() as events:
        empty = manager.take(bucket).snapshot
    assert empty.shrunk == f"5 of the 5 objects of {good.name} are gone"
    assert [e.event for e in events] == ["backup_small", "backup_succeeded"]
    handle = SimpleNamespace(settings=buckets.settings, creds=infra_stack.creds)
    planned = recovery_backups.plan(handle, RecoveryOptions("objects"))  # type: ignore[arg-type]
    assert planned.buckets[bucket] == [good.name]
    restored = recovery_backups.restore_buckets(handle, {bucket: planned.buckets[bucket]})  # type: ignore[arg-type]
    assert restored["buckets"][bucket]["method"] == "snapshot"
    assert sorted(buckets.etags(bucket)) == sorted(FIRST)
    before = recovery_backups.plan(handle, RecoveryOptions(  # type: ignore[arg-type]
        "objects", to=good.started_at - timedelta(seconds=1)))
    assert planned.buckets[bucket] and before.buckets[bucket] == []

    _clear(buckets, bucket)  # the disaster again; two rounds of the loop record it
    for _ in range(2):
        clock.advance(120)
        assert manager.take(bucket).snapshot.shrunk == f"5 of the 5 objects of {good.name} " \
            "are gone"
    planned = recovery_backups.plan(handle, RecoveryOptions("objects"))  # type: ignore[arg-type]
    assert planned.buckets[bucket] == [good.name]
    clock.advance(120)  # the operator says the deletion was meant: a new baseline
    meant = manager.take(bucket, accept_shrink=True).snapshot
    assert meant.shrunk is None
    planned = recovery_backups.plan(handle, RecoveryOptions("objects"))  # type: ignore[arg-type]
    assert planned.buckets[bucket][0] == meant.name


def test_dr_status_shows_each_buckets_newest_snapshot_and_its_age(
        infra_stack: Stack, manager: SnapshotManager, buckets: Buckets, clock: Clock) -> None:
    from autograph.dr.daemon import snapshot_states

    bucket = buckets.make_app_bucket({"k": b"v"})
    taken = manager.take(bucket).snapshot
    clock.advance(45)
    settings = buckets.settings.model_copy(update={"scheduler_enabled": True,
                                                   "snapshot_interval_seconds": 120})
    unreachable: dict[str, str] = {}
    states = {s.bucket: s for s in snapshot_states(settings, infra_stack.creds, clock(),
                                                   unreachable)}
    assert set(states) == set(settings.app_buckets) and unreachable == {}
    assert (states[bucket].status, states[bucket].latest) == ("ok", taken.name)
    assert states[bucket].age_seconds == 45.0 and states[bucket].within_rpo
    assert states[settings.app_buckets[1]].problems == ["no snapshot yet"]
    off = settings.model_copy(update={"snapshot_interval_seconds": 0})
    assert snapshot_states(off, infra_stack.creds, clock(), {}) == []


def test_a_failed_cli_snapshot_is_journaled_for_the_gateways_monitor(buckets: Buckets) -> None:
    from autograph.dr.ops.journal import journal_path

    missing = buckets.settings.app_buckets[2]  # never created
    failed = _cli(buckets.settings, "create", missing)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    lines = journal_path(buckets.settings.dr_dir).read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert any(e["event"] == "backup_failed" and e["name"] == missing and e["kind"] ==
               "snapshot" for e in events), events[-3:]


def test_compressible_objects_are_stored_compressed_and_restore_byte_for_byte(
        manager: SnapshotManager, buckets: Buckets) -> None:
    canvas = json.dumps({"nodes": [{"id": i, "label": f"node {i}"} for i in range(2000)]})
    bucket = buckets.make_app_bucket({"canvas.json": (canvas.encode(), "application/json", {}),
                               "noise.bin": os.urandom(20_000), "tiny": b"x" * 100})
    snap = manager.take(bucket).snapshot
    records = {o.key: o for o in snap.objects}
    packed = records["canvas.json"]
    assert packed.compressed and packed.blob_size < packed.size / 3
    assert not records["noise.bin"].compressed and not records["tiny"].compressed
    assert manager.verify(snap.name, deep=True)["status"] == "passed"
    before = buckets.contents(bucket)
    _clear(buckets, bucket)
    manager.restore(snap.name)
    assert buckets.contents(bucket) == before

    path = manager.store.blob_path(packed.blob_key)  # bit rot in the local compressed blob
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert manager.verify(snap.name, deep=True)["status"] == "degraded"
    _clear(buckets, bucket)
    manager.restore(snap.name)  # the S3 copy serves
    assert buckets.contents(bucket) == before


def test_small_and_large_objects_land_once_in_both_tiers_with_no_temporary_files(
        manager: SnapshotManager, buckets: Buckets) -> None:
    big = b"".join(os.urandom(1024) * 8 for _ in range(IN_MEMORY // 8192 + 10))  # streamed
    bucket = buckets.make_app_bucket({"big.bin": big, "small.txt": b"hello " * 100,
                               "copy-of-small.txt": b"hello " * 100})
    result = manager.take(bucket)
    records = {o.key: o for o in result.snapshot.objects}
    assert records["big.bin"].size == len(big) > IN_MEMORY and records["big.bin"].compressed
    assert records["small.txt"].compressed and result.snapshot.new_blobs == 2
    assert result.tiers == ["local", "s3"]
    assert manager.verify(result.snapshot.name, deep=True)["status"] == "passed"
    assert not [p.name for p in manager.store.blobs_dir.iterdir() if p.name.startswith(".")]
    for key in {o.blob_key for o in result.snapshot.objects}:  # the local blob can go: S3 serves
        manager.store.blob_path(key).unlink()
    before = buckets.contents(bucket)
    _clear(buckets, bucket)
    manager.restore(result.snapshot.name)
    assert buckets.contents(bucket) == before
