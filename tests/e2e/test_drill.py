"""The DR drill end to end in its sandbox, one sandbox for the module: each scenario, latest
backups corrupted (fallback to older ones, with the RPO cost), and the stack the sandbox was
made beside (the session's app stack) left untouched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from autograph.dr.drill import DrillOptions, make_sandbox, remove_sandbox, run_drill
from autograph.dr.drill_integrity import fingerprint
from autograph.dr.drill_models import CRITERIA, DrillReport, Scenario
from autograph.dr.report import drill_schedule, load_history, report_folder
from autograph.dr.workload import DatasetSpec
from autograph.s3client import app_client
from autograph.stack.lifecycle import Stack

pytestmark = pytest.mark.e2e

SERVICES = ("gateway", "auth", "diagram", "svg", "collaboration", "export")
SMALL = DatasetSpec(users=2, diagrams_per_user=3, versions_per_diagram=2, uploads=3,
                    exports=3, export_bytes=8_000, upload_bytes=8_000)


@pytest.fixture(scope="module")
def beside(app_stack: Stack) -> dict[str, Any]:
    """The running stack's processes and data, before any sandbox exists."""
    s3 = app_client(app_stack.settings, app_stack.creds)
    return {"data": fingerprint(app_stack.settings, app_stack.creds, s3),
            "processes": {row.name: (row.pid, row.uptime_seconds) for row in app_stack.ps()}}


@pytest.fixture(scope="module")
def sandbox(app_stack: Stack, beside: dict[str, Any]) -> Iterator[Stack]:
    """A sandbox made from the running stack's settings, with the services the plan's checks
    need (the rest only cost start-up time here)."""
    stack = make_sandbox(app_stack.settings.model_copy(update={"services": SERVICES}))
    try:
        stack.up()
        yield stack
    finally:
        remove_sandbox(stack)


def _drill(sandbox: Stack, app_stack: Stack, scenario: Scenario, **options: Any) -> DrillReport:
    chosen = DrillOptions(scenarios=(scenario,), dataset=SMALL, window_seconds=1.5, **options)
    return run_drill(sandbox, scenario, chosen, app_stack.settings.dr_dir, live=False)


def _status(report: DrillReport) -> dict[str, str]:
    return {line.item: line.status for line in report.success_criteria}


def _recovered(report: DrillReport, dr_dir: Any) -> None:
    """The recovery worked, was measured, and its reports were written."""
    recovery = [s for s in report.steps if s.name.startswith("recover.")]
    assert recovery and all(s.status != "failed" for s in recovery), report.issues
    assert report.rto_seconds is not None and report.rto_seconds > 0
    status = _status(report)
    for item in CRITERIA[0], CRITERIA[2], CRITERIA[3], CRITERIA[4]:
        assert status[item] == "pass", (item, report.success_criteria)
    assert report.rpo.database_writes_acknowledged and report.rpo.objects_acknowledged
    folder = report_folder(dr_dir, report.started_at, report.scenario)
    assert {p.name for p in folder.iterdir()} >= {"report.json", "report.md", "report.html",
                                                  "writes.jsonl"}
    saved = json.loads((folder / "report.json").read_text())
    assert saved["scenario"] == report.scenario and saved["passed"] is report.passed
    for kind in ("database", "objects"):
        found = report.integrity[kind]
        assert found["ok"], (kind, found["basis"], found["mismatched"], report.issues)


def test_complete_failure(sandbox: Stack, app_stack: Stack) -> None:
    report = _drill(sandbox, app_stack, "complete")
    _recovered(report, app_stack.settings.dr_dir)
    # The database comes back from its base backup plus the streamed WAL: nothing lost.
    assert report.backups["restored"]["method"] == "physical"
    assert report.rpo.database_writes_lost == 0 and report.rpo.objects_lost
    assert report.database_restore_seconds and report.objects_restore_seconds
    status = _status(report)
    assert all(status[item] == "pass" for item in CRITERIA[:7]), report.success_criteria
    # ... but the buckets only from their last backup: diagrams made since keep their rows
    # and lose their canvases, and the drill says so.
    corruption = next(c for c in report.success_criteria if c.item == CRITERIA[7])
    assert corruption.status == "fail" and "missing objects" in corruption.evidence
    services = {s.name: s for s in report.services}
    assert {"postgres", "redis", "s3", "walstream", *SERVICES} <= set(services)
    assert all(s.healthy and s.recovery_seconds for s in services.values())
    assert set(report.workload["fault"]["killed"]) >= {"postgres", "s3", "supervisord"}


def test_database_corruption(sandbox: Stack, app_stack: Stack) -> None:
    report = _drill(sandbox, app_stack, "database")
    _recovered(report, app_stack.settings.dr_dir)
    assert report.rpo.database_writes_lost and report.rpo.objects_lost == 0
    assert report.workload["fault"]["corrupted"]["diagram_versions_deleted"] > 0
    assert report.backups["restored"]["method"] == "dump"  # the plan's Scenario 2
    assert all(line.status == "pass" for line in report.success_criteria), report.issues
    assert report.passed  # every criterion checked and passed, both targets met
    stopped = next(s for s in report.steps if s.name == "recover.stop_services")
    assert "gateway" not in stopped.detail  # the admin API stays up (SPEC §8)


def test_object_storage_loss(sandbox: Stack, app_stack: Stack) -> None:
    report = _drill(sandbox, app_stack, "objects")
    _recovered(report, app_stack.settings.dr_dir)
    assert report.rpo.objects_lost and report.rpo.database_writes_lost == 0
    # Diagrams the writer created after the bucket backup keep their rows but lose their
    # canvases: the drill must say so rather than call the data intact.
    corruption = next(c for c in report.success_criteria if c.item == CRITERIA[7])
    assert corruption.status == "fail" and "missing objects" in corruption.evidence
    assert not report.passed


def test_corrupted_latest_backups_fall_back_to_older_ones_and_show_the_cost(
        sandbox: Stack, app_stack: Stack) -> None:
    report = _drill(sandbox, app_stack, "complete", backup_rounds=2, corrupt_latest=True)
    _recovered(report, app_stack.settings.dr_dir)
    first, latest = report.backups["taken"]
    restored = report.backups["restored"]
    assert restored["database"] == first["base"]  # the older base backup, then all the WAL
    assert restored["buckets"] == first["buckets"]
    refused = {r["backup"]: r["reason"] for r in restored["refused"]}
    assert set(refused) == {latest["base"], *latest["buckets"].values()}
    assert all("sha256" in reason for reason in refused.values())
    assert any(latest["base"] in issue and "refused" in issue for issue in report.issues)
    # The streamed WAL makes up for the older base backup; the older bucket backups cost the
    # objects written between the two rounds too.
    assert report.rpo.database_writes_lost == 0
    assert report.rpo.objects_seconds is not None and report.rpo.objects_seconds > 1.5


def test_history_and_schedule(app_stack: Stack) -> None:
    history = load_history(app_stack.settings.dr_dir)
    assert history, "run with the drills above"
    last = history[-1]
    schedule = drill_schedule(history, last.finished_at)
    assert schedule.last_tested == last.finished_at and not schedule.overdue
    assert schedule.next_scheduled.month in (1, 4, 7, 10)


def test_the_stack_beside_the_sandbox_kept_its_processes_and_data(
        app_stack: Stack, beside: dict[str, Any], sandbox: Stack) -> None:
    """Runs after the drills above (file order): same pids, longer uptimes, same data."""
    rows = {row.name: row for row in app_stack.ps()}
    for name, (pid, uptime) in beside["processes"].items():
        assert rows[name].pid == pid and rows[name].healthy
        assert rows[name].uptime_seconds is not None and uptime is not None
        assert rows[name].uptime_seconds > uptime
    after = fingerprint(app_stack.settings, app_stack.creds,
                        app_client(app_stack.settings, app_stack.creds))
    assert after.tables == beside["data"].tables
    assert after.objects == beside["data"].objects
