"""The automated DR drill (``python test_disaster_recovery.py --simulate``, ``autograph dr
drill``): load data, keep a writer committing, take backups, inject a scenario's failure, run
the recovery, measure RTO, RPO, restore times and integrity, judge the plan's success criteria,
and write the reports.

By default the drill runs in a sandbox (:mod:`.sandbox`): a stack of its own in a temporary
home on free ports, so the stack it was started beside is never touched. ``live=True`` runs it
on the configured stack (destroying its data by design; the CLI demands an explicit
confirmation). The steps up to the failure are in :mod:`.before_failure`, the recovery and the
measures after it in :mod:`.after_failure`.
"""

from __future__ import annotations

from pathlib import Path

from autograph.clock import Clock, utc_now
from autograph.config import Settings
from autograph.dr.drill import offsite
from autograph.dr.drill.after_failure import measure, recover
from autograph.dr.drill.before_failure import DrillRun
from autograph.dr.drill.evidence import Evidence
from autograph.dr.drill.measure import evaluate
from autograph.dr.drill.models import DrillReport, Targets
from autograph.dr.drill.options import DrillOptions
from autograph.dr.drill.recorder import StepRecorder
from autograph.dr.drill.report import report_folder, write_report
from autograph.dr.drill.sandbox import keep_sandbox_logs, make_sandbox, remove_sandbox
from autograph.dr.models import ProgressFn, Scenario, no_progress
from autograph.dr.recovery.checks import uses_gateway
from autograph.dr.recovery.client import ApiClient
from autograph.errors import OperationFailed
from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack

MACHINE_DATABASE_RPO = 60.0


def run_drill(stack: Stack, scenario: Scenario, options: DrillOptions, dr_dir: Path, *,
              live: bool, clock: Clock = utc_now, progress: ProgressFn = no_progress
              ) -> DrillReport:
    """One drill of ``scenario`` on a running, healthy ``stack``; reports under ``dr_dir``.

    Never raises for a failure of the system under test: that is what the report records.
    """
    settings = stack.settings
    started = clock()
    folder = report_folder(dr_dir, started, scenario)
    folder.mkdir(parents=True, exist_ok=True)
    rec = StepRecorder(clock, progress)
    ev = Evidence(scenario=scenario, targets=_targets(stack, scenario, options),
                  schedule={"database": _database_interval(stack, scenario),
                            "buckets": int(settings.snapshot_interval_seconds)
                            or settings.bucket_backup_interval_seconds},
                  components=[c.name for c in stack.components])
    run = DrillRun(stack, scenario, options, folder, ev, rec,
                   ApiClient(settings, via_gateway=uses_gateway(stack)),
                   app_client(settings, stack.creds), clock=clock, progress=progress)
    try:
        run.up_to_the_failure(int(started.timestamp()))
        recover(run)
        measure(run)
        rec.run("screenshots_after_recovery",
                lambda: run.screenshots("after_recovery", run.recovered or stack), timeout=90)
    except OperationFailed as exc:
        ev.issues.append(exc.message)
    finally:
        run.close()
    report = evaluate(ev, rec.steps, started=started, finished=clock(),
                      mode="live" if live else "sandbox")
    write_report(report, dr_dir)
    return report


def _targets(stack: Stack, scenario: Scenario, options: DrillOptions) -> Targets:
    """The options' targets, else the settings'; the machine scenario's off-site bounds."""
    settings = stack.settings
    targets = options.targets or Targets(rto_seconds=settings.rto_target_seconds,
                                         rpo_seconds=settings.rpo_target_seconds)
    if scenario == "machine":  # SPEC §7: the off-site bounds (WAL closed every 60 s)
        targets = targets.model_copy(update={
            "database_rpo_seconds": min(MACHINE_DATABASE_RPO, targets.rpo_seconds),
            "objects_rpo_seconds": min(settings.snapshot_interval_seconds or
                                       targets.rpo_seconds, targets.rpo_seconds)})
    return targets


def _database_interval(stack: Stack, scenario: Scenario) -> int | None:
    """Seconds of writes the database protection can lose at worst (None: seconds, WAL).
    The streamed WAL lives on the machine: after its loss only the off-site base backups
    are left, unless WAL segments are shipped off-site too."""
    settings = stack.settings
    if not any(c.name == "walstream" for c in stack.components):
        return settings.database_backup_interval_seconds
    if scenario == "machine":  # off-site: a segment closed (and shipped) every N seconds
        return (settings.wal_switch_seconds if offsite.ships_wal(settings)
                else settings.base_backup_interval_seconds)
    return None



# Several drills ------------------------------------------------------------------------------

def run_drills(settings: Settings, options: DrillOptions, *, clock: Clock = utc_now,
               progress: ProgressFn = no_progress) -> list[tuple[DrillReport, Path]]:
    """Run each scenario in turn (one sandbox shared by all, removed at the end unless
    ``keep_sandbox``); reports go to ``settings.dr_dir``. Returns each report and its folder.

    Raises OperationFailed when the sandbox does not start or the live stack is not healthy.
    """
    dr_dir = settings.dr_dir
    if options.live:
        stack = Stack(settings)
        unhealthy = [row.name for row in stack.ps() if not row.healthy]
        if unhealthy:
            raise OperationFailed(f"the live stack is not healthy ({', '.join(unhealthy)}); "
                                  "start it with `autograph up` first")
    else:
        stack = make_sandbox(settings)
    reports: list[tuple[DrillReport, Path]] = []
    try:
        if not options.live:
            progress(f"sandbox in {stack.settings.home_dir}", None)
            stack.up(progress=lambda message: progress(message, None))
        for scenario in options.scenarios:
            progress(f"drill {scenario}", None)
            report = run_drill(stack, scenario, options, dr_dir, live=options.live,
                               clock=clock, progress=progress)
            folder = report_folder(dr_dir, report.started_at, scenario)
            reports.append((report, folder))
            if not report.passed and not options.live:
                kept = keep_sandbox_logs(stack.settings.log_dir, folder)
                progress(f"the sandbox's logs are kept in {kept}", None)
            if report.rto_seconds is None and scenario != options.scenarios[-1]:
                progress("recovery failed: later scenarios skipped", None)
                break
    finally:
        if not options.live and not options.keep_sandbox:
            remove_sandbox(stack)
    return reports
