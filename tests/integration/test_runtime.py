"""The DR runtime: monitor leadership (a new leader carries on from the persisted alert state, so
an alert is neither sent twice nor left unresolved across a hand-over) and the bucket schedule
wired to the real MinIOBucketBackupManager and S3."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from alertservers import free_port
from autograph.clock import utc_now
from autograph.config import load_settings
from autograph.dr.alerts.file import FileChannel
from autograph.dr.daemon import Runtime
from autograph.dr.ops import journal
from autograph.dr.ops.hooks import BackupEvent
from autograph.dr.schedules import build_scheduler, open_catalogs
from autograph.s3.boto import app_client, backup_client, ensure_buckets
from autograph.stack.lifecycle import Stack
from catalogutil import add_backup, local_catalog


def test_a_new_leader_continues_the_alert_state(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path / "home", backup_dir=tmp_path / "backups", pg_port=free_port(),
        redis_port=free_port(), s3_port=free_port(), services=(), scheduler_enabled=False,
        monitor_enabled=False, disk_usage_alert_percent=100.0, backup_storage_min_free_bytes=0)
    log = tmp_path / "alerts.log"
    first = Runtime(settings, channels=[FileChannel(log)])
    second = Runtime(settings, channels=[FileChannel(log)])
    events = journal.journal_path(settings.dr_dir)
    try:
        assert first.try_lead() and not second.try_lead()
        journal.append(events, BackupEvent("backup_failed", "database", None, "pg_dump failed"))
        assert first.monitor is not None
        first.monitor.process_journal()
        first.stop()

        assert second.try_lead() and second.monitor is not None
        assert [a.key for a in second.alerts()[0]] == ["backup_failed:database"]
        journal.append(events, BackupEvent("backup_failed", "database", None, "again"))
        second.monitor.process_journal()  # still firing: nothing new is sent
        entry = add_backup(local_catalog(settings.backups_dir, "database"),
                           "scheduled_backup_after", utc_now())
        journal.append(events, BackupEvent("backup_succeeded", "database", entry.name, "ok"))
        second.monitor.process_journal()
    finally:
        first.stop()
        second.stop()
    notices = [(a["key"], a["status"]) for a in map(json.loads, log.read_text().splitlines())]
    assert notices == [("backup_failed:database", "firing"),
                       ("backup_failed:database", "resolved")]


def test_the_bucket_schedule_backs_up_each_bucket_once_and_prunes(
        infra_stack: Stack, tmp_path: Path) -> None:
    base = infra_stack.settings
    bucket = f"sched-backups-{secrets.token_hex(3)}"
    ensure_buckets(backup_client(base, infra_stack.creds), [bucket])
    source = app_client(base, infra_stack.creds)
    for index in range(3):
        source.put_object(Bucket="diagrams", Key=f"scheduled-test/{index}", Body=b"d" * 200)
    settings = base.model_copy(update={
        "backup_dir": tmp_path / "backups", "backup_bucket_objects": bucket,
        "app_buckets": ("diagrams", "uploads"), "scheduler_startup_delay_seconds": 0.0})
    catalogs = open_catalogs(settings, infra_stack.creds)
    scheduler = build_scheduler(settings, infra_stack.creds, catalogs)

    records = scheduler.tick(["bucket"])
    assert [r.results for r in records] == [{"diagrams": "succeeded", "uploads": "succeeded"}]
    assert scheduler.tick(["bucket"]) == []  # nothing due until next week
    backups = catalogs["bucket"].list().backups
    assert sorted(b.source for b in backups) == ["diagrams", "uploads"]
    for backup in backups:
        assert backup.name.startswith(f"scheduled_{backup.source}_")
        assert set(backup.locations) == {"local", "s3"}
        assert {"scheduled", "weekly", "monthly"} <= set(backup.tags)  # tagged by the prune
