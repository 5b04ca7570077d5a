"""The console's view of a recovery, read from the state file a real Operation writes: live
steps while it runs, an interrupted one shown as not live, none when nothing is pending."""

from __future__ import annotations

import threading
from pathlib import Path

from autograph.dr.ops.steps import Operation, Outcome, Step, StepContext
from autograph.dr.recovery import live
from autograph.errors import OperationFailed


def test_running_then_interrupted_then_none(tmp_path: Path) -> None:
    gate, inside = threading.Event(), threading.Event()

    def wait(_ctx: StepContext) -> Outcome:
        inside.set()
        gate.wait(10)
        return Outcome("restored")

    def fail(_ctx: StepContext) -> None:
        raise OperationFailed("S3 unreachable")

    steps = [Step("assess", lambda _c: "ok", 10), Step("restore_database", wait, 10),
             Step("restore_buckets", fail, 10), Step("verify", lambda _c: None, 10)]
    operation = Operation("recovery", steps, params={"scenario": "complete"},
                          state_path=live.state_path(tmp_path))
    assert live.read_live(tmp_path).state == "none"
    runner = threading.Thread(target=operation.run)
    runner.start()
    assert inside.wait(10)
    now = live.read_live(tmp_path)
    assert (now.state, now.scenario, now.current) == ("running", "complete", "restore_database")
    assert [(s.name, s.status) for s in now.steps] == [
        ("assess", "passed"), ("restore_database", "running"), ("restore_buckets", "pending"),
        ("verify", "pending")]
    assert now.steps[1].duration_seconds is not None and now.steps[1].started_at is not None
    gate.set()
    runner.join(10)
    after = live.read_live(tmp_path)
    assert after.state == "interrupted" and after.runner_pid is None
    assert "resume" in after.message
    assert [(s.name, s.status, s.detail) for s in after.steps][1:3] == [
        ("restore_database", "passed", "restored"),
        ("restore_buckets", "failed", "S3 unreachable")]


def test_a_runner_that_died_mid_step_is_not_shown_as_live(tmp_path: Path) -> None:
    path = live.state_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"operation": "recovery", "params": {"scenario": "database"}, '
                    '"started_at": "2026-12-02T09:00:00Z", "current": "restore_database", '
                    '"current_started_at": "2026-12-02T09:01:00Z", "runner_pid": 999999999, '
                    '"planned": ["assess", "restore_database"]}')
    seen = live.read_live(tmp_path)
    assert seen.state == "interrupted" and seen.current is None
    assert [(s.name, s.status) for s in seen.steps] == [("assess", "pending"),
                                                        ("restore_database", "pending")]
    assert seen.steps[1].detail == "was running when the recovery stopped"


def test_an_unreadable_state_file_is_reported_not_raised(tmp_path: Path) -> None:
    path = live.state_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{half")
    seen = live.read_live(tmp_path)
    assert seen.state == "interrupted" and "unreadable" in seen.message


def test_the_recovery_report_keeps_the_notification_timeline(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from autograph.dr.alerts.models import Notification
    from autograph.dr.recovery.report import RecoveryReport, write_recovery_report

    t = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    sent = [Notification(at=t, channel="slack", key="s3_unreachable", status="escalated",
                         severity="critical", level="lead", delivered=False, message="S3 down")]
    report = RecoveryReport(scenario="objects", params={}, status="passed", started_at=t,
                            finished_at=t, steps=[], notifications=sent)
    folder = write_recovery_report(report, tmp_path)
    markdown = (folder / "report.md").read_text()
    assert "## Notifications sent" in markdown
    assert "| 2026-12-02T09:00:00Z | slack | s3_unreachable | escalated | lead | NO |" in markdown
    assert '"level": "lead"' in (folder / "report.json").read_text()
