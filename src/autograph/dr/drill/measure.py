"""Turning what a drill observed into its report: RTO, per-service recovery times, restore
times, integrity verdicts, the plan's success criteria with evidence, issues and action items.

Pure: everything comes in through :class:`.evidence.Evidence` (the integrity part is
:mod:`.integrity_verdict`); nothing here talks to a server. A measure
that was not taken stays ``None`` and its criterion ``not_checked`` (or ``fail`` when the
recovery itself failed, since then the system is known not to be back).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from autograph.dr.drill.evidence import Evidence
from autograph.dr.drill.integrity_verdict import corruption_verdict, integrity_report
from autograph.dr.drill.models import (
    CRITERIA,
    DrillReport,
    RpoFigures,
    ServiceRecovery,
    checklist,
)
from autograph.dr.models import StepRecord


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


def _rpo_figures(ev: Evidence) -> RpoFigures:
    db, ob = ev.rpo_database, ev.rpo_objects
    return RpoFigures(
        database_seconds=db.seconds if db else None,
        database_writes_lost=db.lost if db else None,
        database_writes_acknowledged=db.acknowledged if db else None,
        objects_seconds=ob.seconds if ob else None,
        objects_lost=ob.lost if ob else None,
        objects_acknowledged=ob.acknowledged if ob else None)


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
    results[CRITERIA[7]] = corruption_verdict(ev, integrity)
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
        objects_restore_seconds=obj_step.data.get("restore_seconds", obj_step.duration_seconds)
        if obj_step and obj_step.status == "passed" else None,  # it may begin in the db step
        backups={"taken": ev.backups_taken, "restored": restored, "corrupted": ev.corrupted,
                 "schedule_seconds": ev.schedule},
        workload={**ev.workload, "fault": ev.fault or {}},
        integrity=integrity, success_criteria=checklist(results), issues=issues,
        action_items=actions, screenshots=ev.screenshots, notes=ev.notes)


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
