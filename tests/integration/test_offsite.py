"""The off-site tier on real servers: a stack (PostgreSQL, Redis, S3, WAL stream, shipper) whose
off-site store is a second SeaweedFS. Every kind goes there encrypted; restores come back from
it; damage is detected; an outage is survived with the backlog shipped and no WAL gap."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.alerts.file import FileChannel
from autograph.dr.buckets.manager import MinIOBucketBackupManager
from autograph.dr.buckets.snapshots.manager import SnapshotManager
from autograph.dr.catalog import open_catalog
from autograph.dr.monitor.monitor import Monitor
from autograph.dr.offsite.shipper import read_status
from autograph.dr.offsite.status import offsite_status
from autograph.dr.offsite.wal import SEGMENT, WalShipper, chain_check, completed, fetch_wal
from autograph.dr.postgres import DatabaseBackupManager
from autograph.dr.postgres.physical import PhysicalBackupManager
from autograph.dr.postgres.walstream import cluster_wal_dir
from autograph.dr.storage.crypto import MAGIC
from autograph.dr.storage.offsite import area_prefix, offsite_client, offsite_key
from autograph.errors import IntegrityError
from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack
from offsiteutil import OffsiteServer
from stackutil import make_home, remove_home, stack_settings

SWITCH = 3  # the shipper closes a segment holding writes this old (default 60 s)


@pytest.fixture(scope="module")
def stack(offsite_server: OffsiteServer) -> Iterator[Stack]:
    home = make_home("autograph-offsite-stack-")
    settings = stack_settings(home, **offsite_server.overrides(), wal_switch_seconds=SWITCH,
                              offsite_wal_poll_seconds=0.5, offsite_sync_interval_seconds=4,
                              offsite_s3_prefix=f"site-{home.name[-8:].lower()}/")
    running = Stack(settings)
    try:
        running.up()
        yield running
    finally:
        running.down()
        remove_home(home)


def _wait(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _write(stack: Stack, rows: int = 50) -> None:
    manager = DatabaseBackupManager(stack.settings, stack.creds)
    with manager.server.connect(stack.settings.pg_database) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS offsite_t (id serial, v text)")
        conn.execute("INSERT INTO offsite_t (v) SELECT repeat('x', 200) FROM "
                      "generate_series(1, %s)", (rows,))
        conn.commit()


def _raw(stack: Stack, area: str, key: str) -> bytes:
    client = offsite_client(stack.settings)
    return client.get_object(Bucket=stack.settings.offsite_s3_bucket,
                             Key=area_prefix(stack.settings, area) + key)["Body"].read()


def _flip(stack: Stack, area: str, key: str, at: int = -40) -> bytes:
    client = offsite_client(stack.settings)
    full = area_prefix(stack.settings, area) + key
    data = _raw(stack, area, key)
    damaged = bytearray(data)
    damaged[at] ^= 0x01
    client.put_object(Bucket=stack.settings.offsite_s3_bucket, Key=full, Body=bytes(damaged))
    return data


def _restore_raw(stack: Stack, area: str, key: str, data: bytes) -> None:
    offsite_client(stack.settings).put_object(
        Bucket=stack.settings.offsite_s3_bucket, Key=area_prefix(stack.settings, area) + key,
        Body=data)


def test_every_kind_goes_offsite_encrypted_with_its_key_id(stack: Stack) -> None:
    settings, creds = stack.settings, stack.creds
    _write(stack)
    dump = DatabaseBackupManager(settings, creds).create("off_db_1", verify=False)
    base = PhysicalBackupManager(settings, creds).create("off_base_1")
    client = app_client(settings, creds)
    client.put_object(Bucket="diagrams", Key="d1.json", Body=b'{"secret": "plaintext-marker"}')
    archive = MinIOBucketBackupManager(settings, creds).create("diagrams", "off_bucket_1",
                                                               verify=False)
    snap = SnapshotManager(settings, creds).take("diagrams")
    key = offsite_key(settings)
    assert key is not None and (settings.secrets_dir / "offsite-key").stat().st_mode & 0o077 == 0
    for entry, area in ((dump, "database"), (base, "base"), (archive, "minio")):
        assert "offsite" in entry.locations, entry.name
        raw = _raw(stack, area, entry.artifact)
        assert raw.startswith(MAGIC) and key.key_id.encode() in raw[:40]
        manifest_raw = _raw(stack, area, entry.name + ".manifest.json")
        assert manifest_raw.startswith(MAGIC) and b'"sha256"' not in manifest_raw
        offsite_entry = open_catalog(settings, None, entry.kind).list(("offsite",)).backups
        shipped = next(e for e in offsite_entry if e.name == entry.name)
        record = shipped.extra["offsite"]
        assert isinstance(record, dict) and record["key_id"] == key.key_id
        catalog = open_catalog(settings, None, entry.kind)
        assert catalog.offsite is not None
        assert catalog.offsite.raw_sha256(entry.artifact) == record["ciphertext_sha256"]
    assert "offsite" in snap.tiers
    index = _raw(stack, "snapshots/index", snap.snapshot.name + ".snapshot.json.gz")
    assert index.startswith(MAGIC)
    blob = _raw(stack, "snapshots/blobs", snap.snapshot.objects[0].blob_key)
    assert blob.startswith(MAGIC) and b"plaintext-marker" not in blob


def test_restore_comes_from_offsite_when_the_other_copies_are_gone(stack: Stack) -> None:
    settings, creds = stack.settings, stack.creds
    entry = DatabaseBackupManager(settings, creds).create("off_db_2", verify=False)
    catalog = open_catalog(settings, creds, "database")
    for store in (catalog.local, catalog.remote):
        assert store is not None
        store.delete(entry.artifact)
        store.delete(entry.name + ".manifest.json")
    assert catalog.get(entry.name).locations == ["offsite"]
    fetched = catalog.fetch(entry.name)
    assert fetched.location == "offsite"
    assert fetched.path.exists() and "decrypted" in " ".join(fetched.notes)
    result = DatabaseBackupManager(settings, creds).restore(entry.name, target="off_restored")
    assert result.source_location == "local"  # fetched above, then checked locally


def test_one_flipped_byte_offsite_is_detected_and_never_restored(stack: Stack) -> None:
    settings, creds = stack.settings, stack.creds
    entry = DatabaseBackupManager(settings, creds).create("off_db_3", verify=False)
    catalog = open_catalog(settings, creds, "database")
    for store in (catalog.local, catalog.remote):
        assert store is not None
        store.delete(entry.artifact)
    good = _flip(stack, "database", entry.artifact)
    with pytest.raises(IntegrityError, match=r"offsite copy not usable.*failed authentication"):
        catalog.fetch(entry.name)
    assert not catalog.local.path(entry.artifact).exists()  # nothing written
    _restore_raw(stack, "database", entry.artifact, good)
    manifest_good = _flip(stack, "database", entry.name + ".manifest.json", at=-5)
    listing = catalog.list(("offsite",))
    assert entry.name not in {b.name for b in listing.backups}
    assert any(entry.name in p and "failed authentication" in p for p in listing.problems)
    _restore_raw(stack, "database", entry.name + ".manifest.json", manifest_good)
    assert catalog.fetch(entry.name).location == "offsite"


def _folder(stack: Stack) -> Path:
    return cluster_wal_dir(stack.settings, stack.creds)


def _shipped_through(stack: Stack, name: str) -> bool:
    status = read_status(stack.settings)
    marks = {f.folder: f.watermark for f in status.wal} if status else {}
    mark = marks.get(_folder(stack).name)
    return mark is not None and mark >= name


def test_wal_is_shipped_within_seconds_of_a_segment_closing(stack: Stack) -> None:
    _write(stack, 5)
    began = time.monotonic()
    before = {p.name for p in completed(_folder(stack))}
    def closed() -> bool:  # a trickle of writes, as from a quiet application
        _write(stack, 1)
        return bool({p.name for p in completed(_folder(stack))} - before)

    _wait(closed, SWITCH + 30, "the shipper to close a segment")
    newest = max(p.name for p in completed(_folder(stack)) if SEGMENT.match(p.name))
    _wait(lambda: _shipped_through(stack, newest), 30, f"{newest} off-site")
    assert time.monotonic() - began < SWITCH + 45
    store = WalShipper(stack.settings).store(_folder(stack).name)
    report = chain_check(store, _folder(stack).name, deep=True)
    assert report.ok and report.last is not None and report.last >= newest


def test_offsite_outage_local_continues_alerts_and_the_backlog_ships_without_gap(
        stack: Stack, offsite_server: OffsiteServer, tmp_path: Path) -> None:
    settings, creds = stack.settings, stack.creds
    offsite_server.kill()
    try:
        started = time.monotonic()
        entry = DatabaseBackupManager(settings, creds).create("off_db_down", verify=False)
        assert "local" in entry.locations and "offsite" not in entry.locations
        assert time.monotonic() - started < 30
        for _ in range(3):  # three segments closed while the store is down
            _write(stack, 5)
            DatabaseBackupManager(settings, creds).server.connect("postgres").execute(
                "SELECT pg_switch_wal()").close()
        last = max(p.name for p in completed(_folder(stack)) if SEGMENT.match(p.name))
        _wait(lambda: (read_status(settings) or None) is not None
              and not read_status(settings).reachable, 10, "the shipper to see the outage")
        status = offsite_status(settings)
        assert status is not None and not status.reachable
        assert any("unreachable" in p for p in status.problems)
        wal = next(k for k in status.kinds if k.kind == "wal")
        assert wal.backlog and wal.backlog >= 1
        monitor = _monitor(stack, tmp_path)
        monitor.check_offsite()
        assert {"offsite_unreachable", "offsite_lag"} <= {a.rule for a in monitor.alerts.active()}
    finally:
        offsite_server.start()
    _wait(lambda: _shipped_through(stack, last), 60, "the WAL backlog to ship")
    catalog = open_catalog(settings, creds, "database")
    _wait(lambda: "offsite" in catalog.get("off_db_down").locations, 30,
          "the backup backlog to ship")
    store = WalShipper(settings).store(_folder(stack).name)
    report = chain_check(store, _folder(stack).name)
    assert report.ok, report.gaps
    status = offsite_status(settings)
    assert status is not None and status.reachable and not [
        k for k in status.kinds if k.kind == "database" and k.backlog]
    monitor.check_offsite()
    assert "offsite_unreachable" not in {a.rule for a in monitor.alerts.active()}


def _monitor(stack: Stack, tmp_path: Path) -> Monitor:
    catalogs = {kind: open_catalog(stack.settings, stack.creds, kind)
                for kind in ("database", "bucket", "basebackup")}
    alerts = AlertDispatcher([FileChannel(tmp_path / "alerts.log")], backoff_seconds=0.0)
    strict = stack.settings.model_copy(update={"rpo_target_seconds": 1})  # any wait is late
    return Monitor(strict, alerts, catalogs)  # type: ignore[arg-type]


def test_a_damaged_wal_segment_offsite_stops_the_fetch_there(stack: Stack,
                                                              tmp_path: Path) -> None:
    folder = _folder(stack).name
    store = WalShipper(stack.settings).store(folder)
    names = sorted(o.key for o in store.list() if SEGMENT.match(o.key))
    assert len(names) >= 3
    victim = names[-2]
    good = _flip(stack, f"wal/{folder}", victim, at=5000)
    try:
        report = chain_check(store, folder, deep=True)
        assert not report.ok and report.damaged[0].startswith(victim)
        fetched = fetch_wal(store, folder, tmp_path / "wal")
        assert fetched.stopped_at == victim and "failed authentication" in (fetched.reason or "")
        assert not (tmp_path / "wal" / victim).exists()
        assert sorted(p.name for p in (tmp_path / "wal").iterdir() if SEGMENT.match(p.name)
                      ) == names[: names.index(victim)]
    finally:
        _restore_raw(stack, f"wal/{folder}", victim, good)


def test_cli_offsite_status_and_wal_check(stack: Stack) -> None:
    from typer.testing import CliRunner

    from autograph.cli.main import app
    from stackutil import settings_env

    env = settings_env(stack.settings)
    runner = CliRunner()
    result = runner.invoke(app, ["backup", "offsite", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["reachable"] and {k["kind"] for k in data["kinds"]} >= {"database", "wal"}
    assert stack.settings.offsite_s3_secret_key is not None
    assert stack.settings.offsite_s3_secret_key.get_secret_value() not in result.output
    result = runner.invoke(app, ["backup", "offsite", "wal"], env=env)
    assert result.exit_code == 0 and "chain complete" in result.output


def test_metrics_show_offsite_lag(stack: Stack) -> None:
    from autograph.dr.daemon import collect_status
    from autograph.dr.monitor.metrics import render

    text = render(lambda: collect_status(stack.settings, stack.creds)).decode()
    assert 'autograph_offsite_lag_seconds{kind="wal"}' in text
    assert "autograph_offsite_reachable 1.0" in text
