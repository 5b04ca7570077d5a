"""From drill evidence to the report: RTO with the measuring pause left out, service recovery
times, integrity bases per scenario, and the success criteria's honesty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from autograph.dr.drill.evidence import Evidence
from autograph.dr.drill.measure import evaluate
from autograph.dr.drill.models import CRITERIA, Targets
from autograph.dr.drill.rpo import DataLoss
from autograph.dr.models import StepRecord
from autograph.dr.recovery.integrity import Fingerprint, TableFingerprint
from autograph.dr.recovery.report import RecoveryReport

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
GREEN = {"health": {"ok": True, "detail": "7 components healthy"},
         "authentication": {"ok": True, "detail": "logged in"},
         "diagrams": {"ok": True, "detail": "created and read"},
         "references": {"ok": True, "detail": "all present"}}


def _step(name: str, start: float, seconds: float, status: str = "passed",
          **data: Any) -> StepRecord:
    return StepRecord(name=name, status=status, started_at=T0 + timedelta(seconds=start),  # type: ignore[arg-type]
                      duration_seconds=seconds, data=data)


def _state(rows: int, checksum: str, keys: dict[str, str]) -> Fingerprint:
    return Fingerprint(tables={"diagrams": TableFingerprint(rows, checksum)},
                       objects={"exports": {k: (v, 10) for k, v in keys.items()}})


def _evidence(scenario: str = "complete", *, failed_at: str | None = None) -> Evidence:
    steps = [
        _step("assess", 1, 1),
        _step("restore_infrastructure", 2, 6, healthy_at={
            "postgres": (T0 + timedelta(seconds=5)).isoformat()}),
        _step("restore_database", 8, 2, backup="db1"),
        _step("restore_buckets", 10, 2, buckets={"exports": {"backup": "ex1"}}),
        _step("start_services", 15, 3, healthy_at={
            "auth": (T0 + timedelta(seconds=18)).isoformat()}),
        _step("verify", 18, 2, checks=GREEN),
    ]
    if failed_at:
        index = next(i for i, s in enumerate(steps) if s.name == failed_at)
        steps = [*steps[:index], steps[index].model_copy(update={"status": "failed"})]
    recovery = RecoveryReport(scenario=scenario, params={}, status="failed" if failed_at
                              else "passed", started_at=T0, finished_at=T0, steps=steps,
                              failed_step=failed_at)
    backup_state = _state(10, "c1", {"a": "e1"})
    return Evidence(
        scenario=scenario,  # type: ignore[arg-type]
        targets=Targets(rto_seconds=3600, rpo_seconds=300),
        schedule={"database": 86400, "buckets": 604800},
        components=["postgres", "auth", "redis"],
        at_backup={"db1": backup_state, "ex1": backup_state},
        before=_state(12, "c2", {"a": "e1", "b": "e2"}),
        after=_state(10, "c1", {"a": "e1"}),
        dangling={"diagram_versions": {"checked": True, "references": 3, "dangling": 0},
                  "ok": True, "orphans": {}},
        failure_at=T0, recovery=recovery, pause_seconds=3.0,
        rpo_database=DataLoss("database", 20, 2, 0, 1.5, T0, T0),
        rpo_objects=DataLoss("object", 20, 1, 0, 0.5, T0, T0),
        relogin={"accounts": 3, "failed": []},
        dataset_check={"diagrams": {"checked": 5, "mismatched": 0},
                       "uploads": {"checked": 2, "mismatched": 0},
                       "exports": {"checked": 2, "mismatched": 0}, "problems": []},
    )


def _report(ev: Evidence) -> Any:
    return evaluate(ev, [], started=T0, finished=T0 + timedelta(seconds=30), mode="sandbox")


def _status(report: Any) -> dict[str, str]:
    return {c.item: c.status for c in report.success_criteria}


def test_rto_runs_from_the_failure_to_verify_green_minus_the_measuring_pause() -> None:
    report = _report(_evidence())
    assert report.recovered_at == T0 + timedelta(seconds=20)
    assert report.rto_seconds == 17.0


def test_service_times_count_from_the_failure_and_skip_the_pause_after_it() -> None:
    services = {s.name: s for s in _report(_evidence()).services}
    assert services["postgres"].recovery_seconds == 5.0
    assert services["auth"].recovery_seconds == 15.0  # 18 s minus the 3 s pause
    assert services["redis"].recovery_seconds == 0.0 and services["redis"].healthy


def test_a_clean_complete_drill_passes_every_measured_criterion_but_not_the_unchecked() -> None:
    report = _report(_evidence())
    status = _status(report)
    assert all(status[item] == "pass" for item in (*CRITERIA[:5], CRITERIA[7]))
    assert status[CRITERIA[5]] == status[CRITERIA[6]] == "not_checked"
    assert not report.passed  # two criteria not checked: never a pass
    assert report.integrity["database"]["basis"] == "state at backup db1"
    assert report.integrity["objects"]["ok"]


def test_the_objects_scenario_compares_the_untouched_database_with_before_the_failure() -> None:
    ev = _evidence("objects")
    ev.after = _state(12, "c2", {"a": "e1"})
    report = _report(ev)
    assert report.integrity["database"]["basis"] == "state before the failure"
    assert report.integrity["database"]["ok"]
    assert report.integrity["objects"]["basis"] == {"exports": "state at backup ex1"}


def test_a_restored_row_that_differs_is_corruption() -> None:
    ev = _evidence()
    ev.after = _state(10, "c9", {"a": "e1"})
    report = _report(ev)
    assert _status(report)[CRITERIA[7]] == "fail"
    assert "diagrams" in report.integrity["database"]["mismatched"]


def test_dangling_references_fail_the_corruption_criterion_with_evidence() -> None:
    ev = _evidence()
    ev.dangling = {"diagram_versions": {"checked": True, "references": 3, "dangling": 2},
                   "ok": False, "orphans": {}}
    line = next(c for c in _report(ev).success_criteria if c.item == CRITERIA[7])
    assert line.status == "fail" and "diagram_versions" in line.evidence


def test_a_failed_recovery_fails_rto_and_leaves_no_rto() -> None:
    ev = _evidence(failed_at="restore_database")
    ev.rpo_database = ev.rpo_objects = None
    ev.verify_checks = {"health": {"ok": False, "detail": "unhealthy: auth (503)"}}
    report = _report(ev)
    status = _status(report)
    assert report.rto_seconds is None
    assert status[CRITERIA[0]] == "fail" and status[CRITERIA[1]] == "fail"
    assert status[CRITERIA[2]] == "fail"
    services = {s.name: s for s in report.services}
    assert not services["auth"].healthy


def test_rpo_over_target_fails_its_criterion() -> None:
    ev = _evidence()
    ev.rpo_database = DataLoss("database", 20, 15, 0, 400.0, T0, T0)
    report = _report(ev)
    assert _status(report)[CRITERIA[1]] == "fail"
    assert not report.rpo_met


def test_an_altered_surviving_write_is_corruption() -> None:
    ev = _evidence()
    ev.rpo_objects = DataLoss("object", 20, 1, 1, 0.5, T0, T0)
    assert _status(_report(ev))[CRITERIA[7]] == "fail"


def test_backup_intervals_over_the_rpo_target_make_an_action_item() -> None:
    items = _report(_evidence()).action_items
    assert any("continuous protection" in item for item in items)


def test_collaboration_and_export_checks_complete_the_checklist() -> None:
    ev = _evidence()
    ev.components += ["collaboration", "export"]
    verify = ev.step("verify")
    assert verify is not None
    verify.data["checks"] = {**GREEN,
                             "collaboration": {"ok": True, "detail": "edit reached"},
                             "export": {"ok": True, "detail": "exported"}}
    report = _report(ev)
    assert all(line.status == "pass" for line in report.success_criteria)
    assert report.passed


def test_a_present_service_that_was_not_verified_is_not_a_pass() -> None:
    ev = _evidence()
    ev.components.append("export")
    assert _status(_report(ev))[CRITERIA[6]] == "not_checked"


def test_a_table_that_changed_while_the_backup_ran_is_listed_not_failed() -> None:
    ev = _evidence()
    ev.after = _state(10, "c9", {"a": "e1"})
    ev.volatile = {"tables": ["diagrams"], "buckets": []}
    report = _report(ev)
    assert report.integrity["database"]["ok"]
    assert report.integrity["database"]["changed_during_backup"] == ["diagrams"]
    line = next(c for c in report.success_criteria if c.item == CRITERIA[7])
    assert line.status == "pass" and "changed while a backup ran" in line.evidence


def test_references_dangling_before_the_failure_are_not_charged_to_the_recovery() -> None:
    ev = _evidence()
    dangling = {"diagram_versions": {"checked": True, "references": 9, "dangling": 4},
                "ok": False, "orphans": {}}
    ev.dangling, ev.dangling_before = dangling, dangling
    report = _report(ev)
    assert report.integrity["references"]["ok"]
    line = next(c for c in report.success_criteria if c.item == CRITERIA[7])
    assert line.status == "pass" and "already missing before the failure" in line.evidence
    ev.dangling = {"diagram_versions": {"checked": True, "references": 12, "dangling": 7},
                   "ok": False, "orphans": {}}
    assert _report(ev).integrity["references"]["new_dangling"] == {"diagram_versions": 3}


def test_rows_naming_objects_the_restored_backups_never_held_are_corruption() -> None:
    ev = _evidence()
    ev.dangling_before = {"diagram_versions": {"checked": True, "references": 9, "dangling": 1,
                                               "keys": ["old"]}, "ok": False, "orphans": {}}
    ev.dangling = {"diagram_versions": {"checked": True, "references": 12, "dangling": 4,
                                        "keys": ["old", "late1", "late2", "held"]},
                   "ok": False, "orphans": {}}
    ev.restored_keys = {"diagrams": {"held", "other"}}
    refs = _report(ev).integrity["references"]
    assert refs["new_dangling"] == {"diagram_versions": 1}  # the backup had it: charged
    assert refs["lost_after_backup"] == {"diagram_versions": 2}
    assert refs["dangling_before_failure"] == {"diagram_versions": 1}
    assert "keys" not in refs["diagram_versions"] and not refs["ok"]
    ev.dangling["diagram_versions"]["keys"] = ["old", "late1", "late2"]
    report = _report(ev)  # database and buckets restored to different moments: corruption
    assert not report.integrity["references"]["ok"]
    line = next(c for c in report.success_criteria if c.item == CRITERIA[7])
    assert line.status == "fail" and "never held" in line.evidence
