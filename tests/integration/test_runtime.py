"""The DR runtime's monitor leadership: one process alerts; a new leader carries on from the
persisted state, so an alert is neither sent twice nor left unresolved across a hand-over."""

from __future__ import annotations

import json
from pathlib import Path

from alertservers import free_port
from autograph.clock import utc_now
from autograph.config import load_settings
from autograph.dr import journal
from autograph.dr.alerts.file import FileChannel
from autograph.dr.hooks import BackupEvent
from autograph.dr.runtime import Runtime
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
