"""The DR drill end to end in its sandbox: the three scenarios (beside a running stack that must
stay untouched), and latest backups corrupted (fallback to older ones, with the RPO cost)."""

from __future__ import annotations

import json
import time

import pytest

from autograph.dr.drill import DrillOptions, run_drills
from autograph.dr.drill_integrity import fingerprint
from autograph.dr.drill_models import CRITERIA, DrillReport
from autograph.dr.report import drill_schedule, load_history
from autograph.dr.workload import DatasetSpec
from autograph.s3client import app_client
from autograph.stack.lifecycle import Stack

pytestmark = pytest.mark.e2e

SMALL = DatasetSpec(users=2, diagrams_per_user=3, versions_per_diagram=2, uploads=3,
                    exports=3, export_bytes=8_000, upload_bytes=8_000)


def _status(report: DrillReport) -> dict[str, str]:
    return {line.item: line.status for line in report.success_criteria}


def _recovered(report: DrillReport) -> None:
    """The recovery itself worked: every recovery step passed or was skipped, checks green."""
    recovery = [s for s in report.steps if s.name.startswith("recover.")]
    assert recovery and all(s.status != "failed" for s in recovery), report.issues
    assert report.rto_seconds is not None and report.rto_seconds > 0
    status = _status(report)
    for item in CRITERIA[0], CRITERIA[2], CRITERIA[3], CRITERIA[4]:
        assert status[item] == "pass", (item, report.success_criteria)


def test_three_scenarios_in_a_sandbox_beside_a_running_stack(app_stack: Stack) -> None:
    s3 = app_client(app_stack.settings, app_stack.creds)
    before = fingerprint(app_stack.settings, app_stack.creds, s3)
    pids = {row.name: (row.pid, row.uptime_seconds) for row in app_stack.ps()}
    options = DrillOptions(scenarios=("complete", "database", "objects"), dataset=SMALL,
                           window_seconds=1.5)

    results = run_drills(app_stack.settings, options)

    reports = {report.scenario: (report, folder) for report, folder in results}
    assert set(reports) == {"complete", "database", "objects"}
    for report, folder in reports.values():
        _recovered(report)
        assert {p.name for p in folder.iterdir()} >= {"report.json", "report.md",
                                                      "report.html", "writes.jsonl"}
        saved = json.loads((folder / "report.json").read_text())
        assert saved["scenario"] == report.scenario and saved["passed"] is report.passed
        assert report.integrity["database"]["ok"], (report.scenario, report.integrity["database"]["mismatched"], [(s.name, s.duration_seconds) for s in report.steps])
        assert report.integrity["objects"]["ok"], report.integrity["objects"]
        assert report.database_restore_seconds is not None or report.scenario == "objects"
        assert report.rpo.database_writes_acknowledged and report.rpo.objects_acknowledged

    complete, _ = reports["complete"]
    assert complete.rpo.database_writes_lost and complete.rpo.objects_lost
    assert complete.objects_restore_seconds is not None
    assert _status(complete)[CRITERIA[7]] == "pass"
    assert {s.name for s in complete.services} >= {"postgres", "redis", "s3", "auth"}
    assert all(s.recovery_seconds and s.recovery_seconds > 0 for s in complete.services)

    database, _ = reports["database"]
    assert database.rpo.database_writes_lost and database.rpo.objects_lost == 0
    assert _status(database)[CRITERIA[7]] == "pass"

    objects, _ = reports["objects"]
    assert objects.rpo.objects_lost and objects.rpo.database_writes_lost == 0
    # Diagrams the writer created after the bucket backup keep their rows but lose their
    # canvases: the drill must say so rather than call the data intact.
    corruption = next(c for c in objects.success_criteria if c.item == CRITERIA[7])
    assert corruption.status == "fail" and "missing objects" in corruption.evidence

    history = load_history(app_stack.settings.dr_dir)
    assert [h.scenario for h in history][-3:] == ["complete", "database", "objects"]
    schedule = drill_schedule(history, objects.finished_at)
    assert schedule.last_tested == objects.finished_at and not schedule.overdue

    # The stack the drill ran beside: same processes, still up, same data.
    time.sleep(0.1)
    after_pids = {row.name: (row.pid, row.uptime_seconds) for row in app_stack.ps()}
    for name, (pid, uptime) in pids.items():
        assert after_pids[name][0] == pid
        assert after_pids[name][1] is not None and uptime is not None
        assert after_pids[name][1] > uptime
    assert all(row.healthy for row in app_stack.ps())
    after = fingerprint(app_stack.settings, app_stack.creds, s3)
    assert after.tables == before.tables and after.objects == before.objects


def test_corrupted_latest_backups_fall_back_to_older_ones_and_show_the_cost(
        app_stack: Stack) -> None:
    options = DrillOptions(scenarios=("complete",), dataset=SMALL, window_seconds=1.0,
                           backup_rounds=2, corrupt_latest=True)

    [(report, _folder)] = run_drills(app_stack.settings, options)

    _recovered(report)
    first, latest = report.backups["taken"]
    restored = report.backups["restored"]
    assert restored["database"] == first["database"]
    assert restored["buckets"] == first["buckets"]
    refused = {r["backup"]: r["reason"] for r in restored["refused"]}
    assert set(refused) == {latest["database"], *latest["buckets"].values()}
    assert all("sha256" in reason or "checksum" in reason for reason in refused.values())
    assert any(latest["database"] in issue and "refused" in issue for issue in report.issues)
    # The older backup costs the writes made between the two rounds too.
    assert report.rpo.database_seconds is not None
    assert report.rpo.database_seconds > options.window_seconds
    assert report.integrity["database"]["ok"] and report.integrity["objects"]["ok"]
