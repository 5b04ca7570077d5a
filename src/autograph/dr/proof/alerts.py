"""The monitor's rules over the proof and drill histories (fire once, resolve once):

- ``deep_verification_failed:<kind>`` — the last restore test of a kind failed (critical),
  with the backups it restored; resolved by the next one that passes;
- ``restore_test_refused:<kind>`` — the disk guard refused the last one (warning);
- ``proof_stale:<kind>`` — no passed restore test of a kind for twice its interval (critical);
- ``drill_failed`` — the last drill failed, or the last scheduled one crashed (critical), with
  the report path; ``drill_overdue`` — none for its interval plus the overdue margin.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from autograph.clock import isoformat
from autograph.config import Settings
from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.drill.report import load_history
from autograph.dr.proof.models import ProofRecord, last_of, load
from autograph.dr.proof.schedule import DRILL_SCENARIOS, proven_kinds


def check(settings: Settings, alerts: AlertDispatcher, now: datetime,
          started_at: datetime) -> None:
    """Evaluate every proof rule once (``started_at``: when the monitor started, the
    reference while nothing was ever proven)."""
    if not (settings.proof_enabled and settings.scheduler_enabled):
        return
    history = load(settings.dr_dir)
    for kind in proven_kinds(settings):
        _kind(settings, alerts, history, kind, now, started_at)
    _drills(settings, alerts, history, now, started_at)


def _kind(settings: Settings, alerts: AlertDispatcher, history: list[ProofRecord],
          kind: str, now: datetime, started_at: datetime) -> None:
    last = last_of(history, kind)  # type: ignore[arg-type]
    passed = last_of(history, kind, "passed")  # type: ignore[arg-type]
    failed_key, refused_key = f"deep_verification_failed:{kind}", f"restore_test_refused:{kind}"
    if last is not None and last.status == "failed":
        alerts.fire(failed_key, "deep_verification_failed", "critical",
                    f"restore test of the newest {kind} backup failed: {last.detail}",
                    {"kind": kind, "evidence": last.evidence, "backups": list(last.backups),
                     "at": isoformat(last.finished_at)})
    elif last is not None and last.status == "passed":
        alerts.resolve(failed_key)
    if last is not None and last.status == "refused":
        alerts.fire(refused_key, "restore_test_refused", "warning",
                    f"restore test of {kind} not started: {last.detail}",
                    {"kind": kind, "at": isoformat(last.finished_at)})
    else:
        alerts.resolve(refused_key)
    limit = timedelta(seconds=2 * settings.proof_interval_seconds)
    since = passed.finished_at if passed else started_at
    stale_key = f"proof_stale:{kind}"
    if now - since <= limit:
        alerts.resolve(stale_key)
        return
    alerts.fire(stale_key, "proof_stale", "critical",
                f"no {kind} backup proven restorable for {(now - since) / timedelta(hours=1):.1f}"
                f" h (a restore test is due every {settings.proof_interval_seconds / 3600:g} h)",
                {"kind": kind, "last_proven": isoformat(passed.finished_at) if passed else None,
                 "evidence": passed.evidence if passed else None})


def _drills(settings: Settings, alerts: AlertDispatcher, history: list[ProofRecord],
            now: datetime, started_at: datetime) -> None:
    drills = load_history(settings.dr_dir)
    last = max(drills, key=lambda d: d.finished_at) if drills else None
    attempt = last_of(history, "drill")
    crashed = attempt is not None and attempt.evidence is None and \
        (last is None or attempt.finished_at > last.finished_at)
    if crashed and attempt is not None:
        alerts.fire("drill_failed", "drill_failed", "critical",
                    f"the scheduled drill did not complete: {attempt.detail}",
                    {"at": isoformat(attempt.finished_at), "evidence": None})
    elif last is not None and not last.passed:
        alerts.fire("drill_failed", "drill_failed", "critical",
                    f"the last DR drill ({last.scenario}, {last.mode}) failed; report "
                    f"{last.report}", {"at": isoformat(last.finished_at),
                                       "evidence": last.report})
    elif last is not None:
        alerts.resolve("drill_failed")
    complete = [d for d in drills if d.scenario in DRILL_SCENARIOS]
    since = max((d.started_at for d in complete), default=started_at)
    limit = timedelta(seconds=settings.drill_interval_seconds
                      + settings.backup_overdue_margin_seconds)
    if now - since <= limit:
        alerts.resolve("drill_overdue")
        return
    alerts.fire("drill_overdue", "drill_overdue", "warning",
                f"no scheduled DR drill ({' or '.join(DRILL_SCENARIOS)}) for "
                f"{(now - since) / timedelta(days=1):.1f} days "
                f"(one every {settings.drill_interval_seconds / 86400:g} days is scheduled)",
                {"last_drill": isoformat(since) if complete else None,
                 "evidence": max(complete, key=lambda d: d.started_at).report
                 if complete else None})
