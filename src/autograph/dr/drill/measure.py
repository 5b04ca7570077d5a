"""Turning what a drill observed into its report: RTO, per-service recovery times, restore
times, integrity verdicts, the plan's success criteria with evidence, issues and action items.

Pure: everything comes in through :class:`Evidence`; nothing here talks to a server. A measure
that was not taken stays ``None`` and its criterion ``not_checked`` (or ``fail`` when the
recovery itself failed, since then the system is known not to be back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from autograph.dr.drill.models import (
    CRITERIA,
    DrillReport,
    RpoFigures,
    Scenario,
    ServiceRecovery,
    Targets,
    checklist,
)
from autograph.dr.drill.rpo import DataLoss
from autograph.dr.models import StepRecord
from autograph.dr.recovery.integrity import (
    OBJECT_REFERENCES,
    Fingerprint,
    TableFingerprint,
    compare_objects,
    compare_tables,
)
from autograph.dr.recovery.run import RecoveryReport

RESTORES_DATABASE = ("complete", "database", "machine")
RESTORES_OBJECTS = ("complete", "objects", "machine")


@dataclass
class Evidence:
    """Everything one drill saw, filled in as it goes."""

    scenario: Scenario
    targets: Targets
    schedule: dict[str, int | None]  # backup interval per kind; None: continuous (WAL)
    components: list[str]
    workload: dict[str, Any] = field(default_factory=dict)
    at_backup: dict[str, Fingerprint] = field(default_factory=dict)  # backup name -> state
    backups_taken: list[dict[str, Any]] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    before: Fingerprint | None = None
    after: Fingerprint | None = None
    dangling: dict[str, Any] | None = None
    dangling_before: dict[str, Any] | None = None  # already there before the failure
    restored_keys: dict[str, set[str]] = field(default_factory=dict)  # bucket -> backup keys
    failure_at: datetime | None = None
    fault: dict[str, Any] | None = None
    recovery: RecoveryReport | None = None
    pause_seconds: float = 0.0
    rpo_database: DataLoss | None = None
    rpo_objects: DataLoss | None = None
    relogin: dict[str, Any] | None = None
    dataset_check: dict[str, Any] | None = None
    verify_checks: dict[str, Any] | None = None
    volatile: dict[str, list[str]] = field(default_factory=dict)  # changed during a backup
    issues: list[str] = field(default_factory=list)

    def step(self, name: str) -> StepRecord | None:
        """A recovery step's result, if it ran."""
        if self.recovery is None:
            return None
        return next((s for s in self.recovery.steps if s.name == name), None)

    def checks(self) -> dict[str, Any]:
        """The verification checks: the recovery's own, else those the drill ran itself."""
        verify = self.step("verify")
        if verify is not None and "checks" in verify.data:
            return dict(verify.data["checks"])
        return dict(self.verify_checks or {})


def _end(step: StepRecord) -> datetime:
    return step.started_at + timedelta(seconds=step.duration_seconds)


def recovery_times(ev: Evidence) -> tuple[datetime | None, float | None,
                                          list[ServiceRecovery]]:
    """When every check was green, the RTO (fingerprinting pause excluded), and each
    component's time from the failure to healthy (0 for one that never went down)."""
    verify = ev.step("verify")
    recovered = _end(verify) if verify is not None and verify.status == "passed" else None
    rto = None
    if recovered is not None and ev.failure_at is not None:
        rto = round((recovered - ev.failure_at).total_seconds() - ev.pause_seconds, 3)
    health = ev.checks().get("health", {})
    healthy_times: dict[str, tuple[str, bool]] = {}
    for name, after_pause in (("restore_infrastructure", False), ("restore_database", False),
                              ("start_services", True)):
        step = ev.step(name)
        for component, at in (step.data.get("healthy_at", {}) if step else {}).items():
            healthy_times[component] = (at, after_pause)
    services = []
    for component in ev.components:
        healthy = bool(health.get("ok")) or (
            bool(health) and f"{component} (" not in str(health.get("detail", "")))
        seconds: float | None = 0.0 if healthy else None
        if component in healthy_times and ev.failure_at is not None:
            at, after_pause = healthy_times[component]
            seconds = (datetime.fromisoformat(at) - ev.failure_at).total_seconds()
            seconds = round(seconds - (ev.pause_seconds if after_pause else 0.0), 3)
        services.append(ServiceRecovery(name=component, recovery_seconds=seconds,
                                        healthy=healthy and bool(health)))
    return recovered, rto, services


def restored_backups(ev: Evidence) -> dict[str, Any]:
    """Which backups the recovery restored, and the ones it refused."""
    database = ev.step("restore_database")
    buckets = ev.step("restore_buckets")
    assess = ev.step("assess")
    refused = []
    for step in (database, buckets):
        if step is not None:
            refused += step.data.get("refused", [])
    return {
        "database": database.data.get("backup") if database else None,
        "method": database.data.get("method") if database else None,
        "wal_segments": ((database.data.get("result") or {}).get("wal_segments", 0)
                         if database else 0),
        "sources": ev.recovery.sources if ev.recovery else {},
        "buckets": {b: v.get("backup") for b, v in
                    (buckets.data.get("buckets", {}) if buckets else {}).items()},
        "refused": refused,
        "point": assess.data.get("point") if assess is not None else None,
    }


def integrity_report(ev: Evidence, restored: dict[str, Any]) -> dict[str, Any]:
    """Restored state vs what it must equal: the state at the backup restored for what the
    scenario destroyed, the state before the failure for what it left alone."""
    result: dict[str, Any] = {"fingerprint_pause_seconds": round(ev.pause_seconds, 3)}
    if ev.before is not None:
        result["before_failure"] = ev.before.summary()
    if ev.after is None or ev.before is None:
        result["database"] = result["objects"] = {"checked": False,
                                                  "why": "the restored state was not captured"}
    else:
        result["after_recovery"] = ev.after.summary()
        expected_tables: dict[str, TableFingerprint] | None
        lenient = list(ev.volatile.get("tables", []))
        if ev.scenario == "machine" and restored["method"] == "physical":
            # The off-site WAL ends at the last segment shipped: tables written after the
            # base backup come back somewhere between it and the failure (the writer's log
            # measures how far: the RPO); every other table must be exactly as before.
            shot = ev.at_backup.get(restored["database"] or "")
            expected_tables = ev.before.tables
            later = sorted(t for t in ev.before.tables
                           if shot is None or shot.tables.get(t) != ev.before.tables[t])
            lenient += later
            basis = (f"state before the failure (base backup {restored['database']} + the "
                     f"WAL shipped off-site); written after the backup, judged by the RPO: "
                     f"{', '.join(later) or 'none'}")
        elif ev.scenario in RESTORES_DATABASE and restored["method"] == "physical":
            expected_tables = ev.before.tables
            basis = (f"state before the failure (base backup {restored['database']} + "
                     "streamed WAL replayed to the end)")
        elif ev.scenario in RESTORES_DATABASE:
            shot = ev.at_backup.get(restored["database"] or "")
            expected_tables = shot.tables if shot else None
            basis = f"state at backup {restored['database']}"
        else:
            expected_tables, basis = ev.before.tables, "state before the failure"
        result["database"] = ({"checked": False, "why": f"no fingerprint of {basis}"}
                              if expected_tables is None else _leniently(
                                  {"checked": True, "basis": basis,
                                   **compare_tables(expected_tables, ev.after.tables)},
                                  lenient))
        expected_objects: dict[str, dict[str, tuple[str, int]]] = {}
        bases = {}
        for bucket in ev.before.objects:
            name = restored["buckets"].get(bucket)
            shot = ev.at_backup.get(name or "") if ev.scenario in RESTORES_OBJECTS else None
            if ev.scenario in RESTORES_OBJECTS and shot is None:
                continue
            source = shot or ev.before
            expected_objects[bucket] = source.objects.get(bucket, {})
            bases[bucket] = f"state at backup {name}" if shot else "state before the failure"
        actual = {b: ev.after.objects.get(b, {}) for b in expected_objects}
        result["objects"] = ({"checked": False, "why": "no fingerprint of the backups restored"}
                             if not expected_objects else _leniently(
                                 {"checked": True, "basis": bases,
                                  **compare_objects(expected_objects, actual)},
                                 ev.volatile.get("buckets", [])))
    result["references"] = _new_dangling(ev.dangling, ev.dangling_before, ev.restored_keys)
    result["dataset"] = ev.dataset_check or {"checked": False}
    return result


def _new_dangling(after: dict[str, Any] | None, before: dict[str, Any] | None,
                  restored_keys: dict[str, set[str]] | None = None) -> dict[str, Any]:
    """References the failure and recovery left dangling, beyond those already dangling
    before the failure (an earlier loss is reported, not charged to this recovery).

    A row naming an object the restored backups never held (written after the snapshot and
    not brought back from the outbox) is listed as ``lost_after_backup`` and is corruption
    too: the database and the buckets were restored to different moments (issue 12)."""
    if after is None:
        return {"checked": False}
    if not any(isinstance(v, dict) and v.get("checked") for v in after.values()):
        return {**_without_keys(after), "ok": None}
    tables = {table: bucket for table, _column, bucket in OBJECT_REFERENCES}
    new: dict[str, int] = {}
    lost: dict[str, int] = {}
    earlier: dict[str, int] = {}
    for table, found in after.items():
        if not (isinstance(found, dict) and found.get("dangling")):
            continue
        was = (before or {}).get(table) or {}
        now_keys, was_keys = set(found.get("keys", [])), set(was.get("keys", []))
        if was.get("dangling"):
            earlier[table] = int(was["dangling"])
        if not now_keys:  # keys not kept: counts only
            extra = int(found["dangling"]) - earlier.get(table, 0)
            if extra > 0:
                new[table] = extra
            continue
        fresh = now_keys - was_keys
        held = restored_keys.get(tables.get(table, "")) if restored_keys else None
        beyond = {k for k in fresh if held is not None and k not in held}
        if beyond:
            lost[table] = len(beyond)
        if len(fresh) - len(beyond) > 0:
            new[table] = len(fresh) - len(beyond)
    return {**_without_keys(after), "new_dangling": new, "lost_after_backup": lost,
            "dangling_before_failure": earlier, "ok": not new and not lost}


def _excused_by_recovery(ev: Evidence) -> str | None:
    """The recovery's own finding when it judged the dangling rows not corruption (a --to
    past the protected point, or objects destroyed before they were protected), else None."""
    if ev.recovery is None:
        return None
    for step in ev.recovery.steps:
        found = step.data.get("checks", {}).get("references", {}) if step.name == "verify" \
            else {}
        if found.get("corruption") is False:
            return str(found.get("detail", ""))
    return None


def _listed(refs: dict[str, Any]) -> str:
    """The dangling rows' keys (samples), for the report."""
    samples = {t: v.get("sample") for t, v in refs.items()
               if isinstance(v, dict) and v.get("dangling")}
    return f" ({samples})" if samples else ""


def _without_keys(found: dict[str, Any]) -> dict[str, Any]:
    """The dangling-reference result without its full key lists (samples stay)."""
    return {k: ({f: x for f, x in v.items() if f != "keys"} if isinstance(v, dict) else v)
            for k, v in found.items()}


def _leniently(comparison: dict[str, Any], volatile: list[str]) -> dict[str, Any]:
    """Mismatches in what changed while the backup ran are listed apart, not held against
    the restore (the exact state the backup caught is unknown for them)."""
    excused = [name for name in comparison["mismatched"] if name in volatile]
    if excused:
        comparison["mismatched"] = [n for n in comparison["mismatched"] if n not in excused]
        comparison["changed_during_backup"] = excused
        comparison["ok"] = not comparison["mismatched"]
    return comparison


def _rpo_figures(ev: Evidence) -> RpoFigures:
    db, ob = ev.rpo_database, ev.rpo_objects
    return RpoFigures(
        database_seconds=db.seconds if db else None,
        database_writes_lost=db.lost if db else None,
        database_writes_acknowledged=db.acknowledged if db else None,
        objects_seconds=ob.seconds if ob else None,
        objects_lost=ob.lost if ob else None,
        objects_acknowledged=ob.acknowledged if ob else None)


def _corruption_verdict(ev: Evidence, integrity: dict[str, Any]) -> tuple[bool | None, str]:
    parts: list[str] = []
    verdicts: list[bool] = []
    for kind in ("database", "objects"):
        found = integrity[kind]
        if not found.get("checked"):
            parts.append(f"{kind}: not checked ({found.get('why')})")
            continue
        verdicts.append(bool(found["ok"]))
        parts.append(f"{kind} {'identical to' if found['ok'] else 'DIFFERS from'} "
                     f"{found['basis'] if kind == 'database' else 'expected'}"
                     + ("" if found["ok"] else f" ({', '.join(found['mismatched'])})"))
        if found.get("changed_during_backup"):
            parts.append(f"not compared ({kind}, changed while a backup ran or the writer "
                         "wrote; see the RPO and the references): "
                         f"{', '.join(found['changed_during_backup'])}")
    refs = integrity["references"]
    excused = _excused_by_recovery(ev)
    if refs.get("ok") is not None:
        verdicts.append(bool(refs["ok"]) or excused is not None)
        if not refs["ok"] and excused is not None:
            parts.append(f"not corruption, as the recovery said before or while it ran: "
                         f"{excused}")
        parts.append("no row names a missing object" if refs["ok"] else
                     f"rows naming missing objects: {refs['new_dangling']}"
                     + _listed(refs))
        if refs.get("lost_after_backup"):
            parts.append(f"rows naming objects the restored backups never held (database "
                         f"and buckets restored to different moments): "
                         f"{refs['lost_after_backup']}")
        if refs.get("dangling_before_failure"):
            parts.append(f"already missing before the failure: "
                         f"{refs['dangling_before_failure']}")
    data = integrity["dataset"]
    if "diagrams" in data:
        bad = sum(v["mismatched"] for k, v in data.items() if isinstance(v, dict))
        verdicts.append(bad == 0)
        parts.append(f"dataset read back with {bad} mismatches")
    changed = sum(x.changed for x in (ev.rpo_database, ev.rpo_objects) if x)
    if ev.rpo_database or ev.rpo_objects:
        verdicts.append(changed == 0)
        parts.append(f"{changed} surviving writes with altered content")
    if not verdicts:
        return None, "; ".join(parts) or "no integrity evidence"
    complete = len(verdicts) >= 4
    ok = all(verdicts)
    return (ok if (complete or not ok) else None), "; ".join(parts)


def criteria(ev: Evidence, rto: float | None, integrity: dict[str, Any]) -> dict[str, Any]:
    """The plan's criteria as ``{item: (ok or None, evidence)}``."""
    failed_step = ev.recovery.failed_step if ev.recovery else None
    down = f"recovery failed at step {failed_step}" if failed_step else "recovery did not run"
    t = ev.targets
    results: dict[str, Any] = {}
    results[CRITERIA[0]] = ((rto <= t.rto_seconds, f"RTO {rto:.1f} s (target {t.rto_seconds:g}"
                             " s), from the failure to every check green") if rto is not None
                            else (False, f"not recovered: {down}"))
    db, ob = ev.rpo_database, ev.rpo_objects
    worst = _worst_case(ev.schedule)
    if db and ob:
        db_target = t.database_rpo_seconds or t.rpo_seconds
        ob_target = t.objects_rpo_seconds or t.rpo_seconds
        ok = db.seconds <= db_target and ob.seconds <= ob_target
        shown = (f"{t.rpo_seconds:g} s" if db_target == ob_target == t.rpo_seconds else
                 f"database {db_target:g} s, objects {ob_target:g} s")
        results[CRITERIA[1]] = (ok, f"database {db.lost}/{db.acknowledged} writes lost "
                                f"({db.seconds:.1f} s), objects {ob.lost}/{ob.acknowledged} "
                                f"lost ({ob.seconds:.1f} s); target {shown}. "
                                f"Measured against backups taken by this drill; with the "
                                f"protection in place the worst case is {worst}")
    elif rto is None:
        results[CRITERIA[1]] = (False, f"not measured: {down}")
    checks = ev.checks()
    for item, key in ((CRITERIA[2], "health"), (CRITERIA[3], "authentication"),
                      (CRITERIA[4], "diagrams")):
        check = checks.get(key)
        if check is None:
            results[item] = (False if failed_step else None, f"not verified: {down}")
        elif check.get("skipped"):
            results[item] = (None, check["detail"])
        else:
            results[item] = (bool(check["ok"]), check["detail"])
    if ev.relogin and results.get(CRITERIA[3], (None,))[0]:
        failed = ev.relogin["failed"]
        count = ev.relogin["accounts"]
        results[CRITERIA[3]] = (not failed, results[CRITERIA[3]][1] + f"; {count} users from "
                                f"before the failure logged in again, {len(failed)} failed")
    data = ev.dataset_check
    if data and results.get(CRITERIA[4], (None,))[0]:
        bad, checked = data["diagrams"]["mismatched"], data["diagrams"]["checked"]
        results[CRITERIA[4]] = (bad == 0, results[CRITERIA[4]][1] + f"; {checked} diagrams "
                                f"from before the failure read back, {bad} differ")
    for item, service in ((CRITERIA[5], "collaboration"), (CRITERIA[6], "export")):
        check = checks.get(service)
        if check is not None:
            results[item] = (bool(check["ok"]), check["detail"])
        elif service in ev.components:
            results[item] = (False if failed_step else None, f"not verified: {down}")
        else:
            results[item] = (None, f"no {service} service in this stack")
    results[CRITERIA[7]] = _corruption_verdict(ev, integrity)
    return results


def evaluate(ev: Evidence, steps: list[StepRecord], *, started: datetime, finished: datetime,
             mode: str) -> DrillReport:
    """The drill's report from its evidence and recorded steps."""
    recovered, rto, services = recovery_times(ev)
    restored = restored_backups(ev)
    integrity = integrity_report(ev, restored)
    results = criteria(ev, rto, integrity)
    issues = list(ev.issues)
    if ev.recovery is not None:
        issues += ev.recovery.issues
        if ev.recovery.next_action:
            issues.append(ev.recovery.next_action)
    writer = ev.workload.get("writer", {})
    if writer.get("failed"):
        issues.append(f"the writer had {writer['failed']} writes refused before the failure "
                      f"(last: {writer.get('last_error')})")
    actions = _action_items(ev, results)
    db_step, obj_step = ev.step("restore_database"), ev.step("restore_buckets")
    return DrillReport(
        scenario=ev.scenario, mode=mode, started_at=started, finished_at=finished,  # type: ignore[arg-type]
        failure_at=ev.failure_at, recovered_at=recovered, rto_seconds=rto,
        rpo=_rpo_figures(ev), targets=ev.targets, steps=steps, services=services,
        database_restore_seconds=db_step.duration_seconds
        if db_step and db_step.status == "passed" else None,
        objects_restore_seconds=obj_step.duration_seconds
        if obj_step and obj_step.status == "passed" else None,
        backups={"taken": ev.backups_taken, "restored": restored, "corrupted": ev.corrupted,
                 "schedule_seconds": ev.schedule},
        workload={**ev.workload, "fault": ev.fault or {}},
        integrity=integrity, success_criteria=checklist(results), issues=issues,
        action_items=actions)


def _worst_case(schedule: dict[str, int | None]) -> str:
    """The worst-case RPO each kind's protection allows, in words."""
    parts = [f"{kind}: " + ("seconds (WAL streamed continuously)" if interval is None
                            else f"{interval} s (interval between backups or snapshots)")
             for kind, interval in schedule.items()]
    return "; ".join(parts) or "unknown"


def _action_items(ev: Evidence, results: dict[str, Any]) -> list[str]:
    items = []
    slow = {k: v for k, v in ev.schedule.items() if v is not None and v > ev.targets.rpo_seconds}
    if slow:
        items.append(f"backup intervals {slow} (seconds) exceed the {ev.targets.rpo_seconds:g} "
                     "s RPO target: add continuous protection for them (SPEC §7: WAL "
                     "streaming, bucket snapshots every few minutes) or back up more often")
    for item, (ok, evidence) in results.items():
        if ok is False:
            items.append(f"fix: {item} — {evidence}")
        elif ok is None and item in (CRITERIA[5], CRITERIA[6]):
            items.append(f"add a functional drill check for: {item}")
    if ev.recovery and ev.recovery.issues:
        items.append("review the recovery issues (refused backups, missing bucket backups)")
    return items
