"""Monitor rules with an injected clock, real catalog folders and real servers to probe."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alertservers import free_port, health_server
from autograph.config import Settings, load_settings
from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.alerts.file import FileChannel
from autograph.dr.monitor.monitor import Expected, Monitor, Watched
from autograph.dr.ops import hooks, journal
from autograph.dr.ops.hooks import BackupEvent
from autograph.s3.boto import make_client
from autograph.stack.health import http_probe, postgres_probe, s3_probe
from catalogutil import add_backup, local_catalog

T0 = datetime(2024, 3, 10, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"home": tmp_path / "home", "backup_dir": tmp_path / "backups",
                              "backup_overdue_margin_seconds": 7200,
                              "unreachable_alert_checks": 2, "unhealthy_alert_seconds": 300,
                              "disk_usage_alert_percent": 100.0,
                              "backup_storage_min_free_bytes": 0, "proof_enabled": False}
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def alerts_log(tmp_path: Path) -> Path:
    return tmp_path / "alerts.log"


@pytest.fixture
def dispatcher(clock: Clock, alerts_log: Path) -> Iterator[AlertDispatcher]:
    alerts = AlertDispatcher([FileChannel(alerts_log)], clock, backoff_seconds=0.0)
    yield alerts
    alerts.close()


def notices(dispatcher: AlertDispatcher, log: Path) -> list[str]:
    """``key status`` of each line the file channel wrote."""
    assert dispatcher.flush(timeout=30)
    if not log.exists():
        return []
    return [f"{a['key']} {a['status']}" for a in map(json.loads, log.read_text().splitlines())]


def make_monitor(tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock,
                 **kwargs: Any) -> Monitor:
    settings = kwargs.pop("settings", None) or settings_for(tmp_path)
    catalogs = {kind: local_catalog(tmp_path / "backups", kind)
                for kind in ("database", "bucket")}
    return Monitor(settings, dispatcher, catalogs, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_dead_mans_switch_fires_after_interval_plus_margin_without_a_backup(
        tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock, alerts_log: Path) -> None:
    monitor = make_monitor(tmp_path, dispatcher, clock,
                           expected=[Expected("database", "autograph", DAY)])
    clock.now = T0 + DAY + timedelta(hours=2)
    monitor.check_backups()
    assert notices(dispatcher, alerts_log) == []

    clock.now += timedelta(seconds=1)
    monitor.check_backups()
    monitor.check_backups()
    assert notices(dispatcher, alerts_log) == ["backup_overdue:database firing"]
    assert "no successful scheduled database backup" in dispatcher.active()[0].message

    add_backup(monitor.catalogs["database"], "scheduled_backup_20240311_040001", clock.now)
    monitor.check_backups()
    assert notices(dispatcher, alerts_log) == ["backup_overdue:database firing",
                                               "backup_overdue:database resolved"]


def test_dead_mans_switch_counts_from_the_last_scheduled_backup(
        tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock, alerts_log: Path) -> None:
    monitor = make_monitor(tmp_path, dispatcher, clock,
                           expected=[Expected("bucket", "uploads", 7 * DAY)])
    catalog = monitor.catalogs["bucket"]
    add_backup(catalog, "scheduled_uploads_20240310_020000", T0, source="uploads",
               duration=timedelta(0))
    add_backup(catalog, "manual_uploads_20240316_020000", T0 + 6 * DAY, source="uploads",
               tags=("manual",))  # a manual backup does not prove the scheduler works
    clock.now = T0 + 7 * DAY + timedelta(hours=2, seconds=1)
    monitor.check_backups()
    assert notices(dispatcher, alerts_log) == ["backup_overdue:bucket:uploads firing"]


def test_backup_events_fire_and_resolve_once(
        tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock, alerts_log: Path) -> None:
    monitor = make_monitor(tmp_path, dispatcher, clock)
    failed = BackupEvent("backup_failed", "database", "scheduled_backup_20240310_020000",
                         "pg_dump: connection refused", at=T0)
    monitor.handle(failed)
    monitor.handle(failed)  # a second failure while firing: no new notice
    monitor.handle(BackupEvent("verification_failed", "bucket", "scheduled_diagrams_x",
                               "sha256 mismatch", at=T0))
    entry = add_backup(monitor.catalogs["database"], "scheduled_backup_20240310_030000",
                       T0 + timedelta(hours=1))
    monitor.handle(BackupEvent("backup_succeeded", "database", entry.name, "ok", at=T0))
    monitor.handle(BackupEvent("verification_passed", "bucket", "scheduled_diagrams_x", "",
                               at=T0))
    assert notices(dispatcher, alerts_log) == [
        "backup_failed:database firing", "verification_failed:bucket firing",
        "backup_failed:database resolved", "verification_failed:bucket resolved"]


def test_bucket_failures_are_per_bucket(
        tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock, alerts_log: Path) -> None:
    monitor = make_monitor(tmp_path, dispatcher, clock)
    monitor.handle(BackupEvent("backup_failed", "bucket", "scheduled_diagrams_20240310_020000",
                               "S3 unreachable", at=T0))
    other = add_backup(monitor.catalogs["bucket"], "scheduled_uploads_20240310_020500", T0,
                       source="uploads")
    monitor.handle(BackupEvent("backup_succeeded", "bucket", other.name, "ok", at=T0))
    assert notices(dispatcher, alerts_log) == ["backup_failed:bucket:diagrams firing"]


def test_a_success_seen_only_in_the_catalog_resolves_a_failure(
        tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock, alerts_log: Path) -> None:
    monitor = make_monitor(tmp_path, dispatcher, clock)
    monitor.handle(BackupEvent("backup_failed", "database", None, "disk full", at=T0))
    clock.now = T0 + timedelta(minutes=5)
    add_backup(monitor.catalogs["database"], "manual_backup_cli", T0 + timedelta(minutes=1),
               tags=("manual",))  # made by the CLI, whose events this process never saw
    monitor.check_backups()
    assert notices(dispatcher, alerts_log) == ["backup_failed:database firing",
                                               "backup_failed:database resolved"]


def test_unusually_small_backup_compared_with_its_own_source(
        tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock, alerts_log: Path) -> None:
    monitor = make_monitor(tmp_path, dispatcher, clock)
    catalog = monitor.catalogs["bucket"]
    for day in range(7):
        add_backup(catalog, f"scheduled_uploads_d{day}", T0 + day * DAY, source="uploads",
                   size=10_000)
        add_backup(catalog, f"scheduled_diagrams_d{day}", T0 + day * DAY, source="diagrams",
                   size=100)
    normal = add_backup(catalog, "scheduled_diagrams_d7", T0 + 7 * DAY, source="diagrams",
                        size=90)
    monitor.handle(BackupEvent("backup_succeeded", "bucket", normal.name, "ok"))
    small = add_backup(catalog, "scheduled_uploads_d7", T0 + 7 * DAY, source="uploads",
                       size=4_000)
    monitor.handle(BackupEvent("backup_succeeded", "bucket", small.name, "ok"))
    back = add_backup(catalog, "scheduled_uploads_d8", T0 + 8 * DAY, source="uploads",
                      size=9_000)
    monitor.handle(BackupEvent("backup_succeeded", "bucket", back.name, "ok"))
    assert notices(dispatcher, alerts_log) == ["backup_small:bucket:uploads firing",
                                               "backup_small:bucket:uploads resolved"]
    assert dispatcher.recent()[0].details["median_bytes"] == 10_000


def test_events_journaled_by_any_process_reach_the_monitor(
        tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock, alerts_log: Path) -> None:
    path = journal.journal_path(tmp_path / "dr")
    unsubscribe = hooks.on_event(journal.recorder(path))
    try:
        hooks.emit(BackupEvent("backup_failed", "database", None, "pg_dump failed"))
    finally:
        unsubscribe()
    monitor = make_monitor(tmp_path, dispatcher, clock, journal_path=path)
    monitor.process_journal()
    monitor.process_journal()  # taken once: the journal is empty now
    assert notices(dispatcher, alerts_log) == ["backup_failed:database firing"]
    assert path.read_text() == ""


def test_service_unhealthy_for_five_minutes(
        tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock, alerts_log: Path) -> None:
    with health_server() as state:
        probe = http_probe(f"http://127.0.0.1:{state['port']}/health")
        monitor = make_monitor(tmp_path, dispatcher, clock,
                               watched=[Watched("diagram", "service", probe)])
        monitor.check_health()
        clock.now = T0 + timedelta(seconds=299)
        monitor.check_health()
        assert notices(dispatcher, alerts_log) == []
        clock.now = T0 + timedelta(seconds=300)
        monitor.check_health()
        assert notices(dispatcher, alerts_log) == ["service_unhealthy:diagram firing"]
        state["status"] = 200
        monitor.check_health()
    assert notices(dispatcher, alerts_log) == ["service_unhealthy:diagram firing",
                                               "service_unhealthy:diagram resolved"]


def test_database_and_s3_unreachable_after_consecutive_failed_checks(
        tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock, alerts_log: Path) -> None:
    dead_s3 = f"http://127.0.0.1:{free_port()}"
    watched = [
        Watched("postgres", "database",
                postgres_probe("127.0.0.1", free_port(), "u", "p", "postgres")),
        Watched("s3", "s3", s3_probe(lambda: make_client(dead_s3, "k", "s", retries=1,
                                                          connect_timeout=0.5))),
    ]
    monitor = make_monitor(tmp_path, dispatcher, clock, watched=watched)
    monitor.check_health()
    assert notices(dispatcher, alerts_log) == []
    monitor.check_health()
    assert sorted(notices(dispatcher, alerts_log)) == ["database_unreachable firing",
                                                       "s3_unreachable firing"]


def test_disk_usage_and_backup_storage_thresholds(
        tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock, alerts_log: Path) -> None:
    full = settings_for(tmp_path, disk_usage_alert_percent=0.0,
                        backup_storage_min_free_bytes=2**62)
    monitor = make_monitor(tmp_path, dispatcher, clock, settings=full)
    monitor.check_storage()
    fired = notices(dispatcher, alerts_log)
    assert fired == [f"disk_usage:{full.home_dir} firing", "backup_storage_low firing"]

    monitor.settings = settings_for(tmp_path)
    monitor.check_storage()
    assert notices(dispatcher, alerts_log)[2:] == [f"disk_usage:{full.home_dir} resolved",
                                                   "backup_storage_low resolved"]


def test_backup_storage_low_when_the_next_round_would_not_fit(
        tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock, alerts_log: Path) -> None:
    monitor = make_monitor(tmp_path, dispatcher, clock)
    catalog = monitor.catalogs["database"]
    entry = add_backup(catalog, "scheduled_backup_1", T0)
    # The last dump is bigger than the free space (a sparse file: it takes no room itself).
    size = shutil.disk_usage(tmp_path).free + 2**30
    with open(catalog.local.path(entry.artifact), "r+b") as artifact:
        artifact.truncate(size)
    catalog.write_manifest(entry.manifest().model_copy(update={"size_bytes": size}), ["local"])
    monitor.check_storage()
    assert notices(dispatcher, alerts_log) == ["backup_storage_low firing"]
    assert dispatcher.active()[0].details["needed_bytes"] == size


def test_stale_journaled_events_are_dropped(
        tmp_path: Path, dispatcher: AlertDispatcher, clock: Clock, alerts_log: Path) -> None:
    path = journal.journal_path(tmp_path / "dr")
    journal.append(path, BackupEvent("backup_failed", "database", None, "old news",
                                     at=T0 - timedelta(hours=2)))
    journal.append(path, BackupEvent("verification_failed", "bucket", "x", "new",
                                     at=T0 - timedelta(minutes=1)))
    make_monitor(tmp_path, dispatcher, clock, journal_path=path).process_journal()
    assert notices(dispatcher, alerts_log) == ["verification_failed:bucket firing"]


def test_snapshots_dead_mans_switch_per_bucket(tmp_path: Path, dispatcher: AlertDispatcher,
                                               clock: Clock, alerts_log: Path) -> None:
    from autograph.dr.buckets.snapshots.store import INDEX_SUFFIX, snapshot_name

    settings = settings_for(tmp_path, app_buckets=("b-one",), snapshot_interval_seconds=120)
    monitor = make_monitor(tmp_path, dispatcher, clock, settings=settings)
    clock.now = T0 + timedelta(seconds=300)  # twice the interval plus a minute
    monitor.check_snapshots()
    assert notices(dispatcher, alerts_log) == []
    clock.now += timedelta(seconds=1)
    monitor.check_snapshots()
    assert notices(dispatcher, alerts_log) == ["backup_overdue:snapshot:b-one firing"]
    assert "objects' RPO is at risk" in dispatcher.active()[0].message
    index = settings.backups_dir / "snapshots" / "index"
    index.mkdir(parents=True)
    (index / (snapshot_name("b-one", clock.now) + INDEX_SUFFIX)).write_bytes(b"")
    monitor.check_snapshots()
    assert notices(dispatcher, alerts_log)[-1] == "backup_overdue:snapshot:b-one resolved"
    off = make_monitor(tmp_path, dispatcher, clock, settings=settings.model_copy(
        update={"snapshot_interval_seconds": 0}))
    clock.now += timedelta(days=1)
    off.check_snapshots()
    assert notices(dispatcher, alerts_log)[-1] == "backup_overdue:snapshot:b-one resolved"
