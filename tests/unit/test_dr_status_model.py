"""The pure DR status of one backup source: age against the RPO target and the schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from autograph.dr.models import BackupEntry, Verification, VerificationStatus
from autograph.dr.monitor.status import source_status, worst
from autograph.dr.scheduler import NextRun

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MARGIN = timedelta(hours=2)


def entry(name: str, finished: datetime, *, verification: VerificationStatus = "passed",
          locations: tuple[str, ...] = ("local", "s3"), source: str = "autograph") -> BackupEntry:
    return BackupEntry(
        name=name, kind="database", source=source, format="pg_dump -Fc",
        artifact=f"{name}.dump", created_at=finished - timedelta(seconds=30),
        started_at=finished - timedelta(seconds=30), finished_at=finished, size_bytes=100,
        sha256="0" * 64, tags=["scheduled"], verification=Verification(status=verification),
        locations=list(locations))


def status(backups: list[BackupEntry], run: NextRun | None = None):  # type: ignore[no-untyped-def]
    return source_status("database", "autograph", backups, run, now=NOW, interval=DAY,
                         margin=MARGIN, rpo_target_seconds=300)


def test_a_recent_verified_backup_with_both_copies_is_ok() -> None:
    result = status([entry("a", NOW - timedelta(hours=3))])
    assert result.status == "ok" and result.problems == []
    assert result.age_seconds == 3 * 3600
    assert result.within_schedule and not result.within_rpo
    assert result.last_success is not None and result.last_success.duration_seconds == 30


def test_within_rpo_only_when_younger_than_the_target() -> None:
    assert status([entry("a", NOW - timedelta(seconds=299))]).within_rpo


def test_no_backup_is_critical() -> None:
    result = status([entry("other", NOW, source="elsewhere")])
    assert result.status == "critical" and result.backups == 0
    assert result.problems == ["no database backup of autograph"]


def test_older_than_interval_plus_margin_is_critical() -> None:
    result = status([entry("a", NOW - DAY - MARGIN - timedelta(seconds=1))])
    assert result.status == "critical" and not result.within_schedule


def test_unverified_or_local_only_is_a_warning_and_failed_ones_are_listed() -> None:
    result = status([entry("new", NOW - timedelta(hours=1), verification="not_verified",
                           locations=("local",)),
                     entry("bad", NOW - timedelta(hours=2), verification="failed")])
    assert result.status == "warning"
    assert result.last_verified is None and result.verification_failed == ["bad"]
    assert len(result.problems) == 2


def test_a_failed_scheduled_run_is_critical_and_named() -> None:
    run = NextRun(kind="database", source="autograph", interval_seconds=86400,
                  last_success=NOW - timedelta(hours=3), last_success_name="a",
                  next_run_at=NOW + timedelta(hours=1), retrying_after_failure=True,
                  last_error="pg_dump exited with 1")
    result = status([entry("a", NOW - timedelta(hours=3))], run)
    assert result.status == "critical"
    assert result.next_scheduled_run == NOW + timedelta(hours=1)
    assert "the last scheduled run failed: pg_dump exited with 1" in result.problems


def test_worst_level() -> None:
    assert worst([]) == "ok"
    assert worst(["ok", "warning"]) == "warning"
    assert worst(["warning", "critical", "ok"]) == "critical"
