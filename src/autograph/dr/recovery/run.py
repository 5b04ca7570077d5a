"""``autograph dr recover``: the plan's recovery runbooks as steps, walked over the stack's
component list in priority order.

Every scenario runs the same seven steps; a step with nothing to do for the scenario (or the
damage found) is recorded as skipped, with why:

1. assess — state and health of every component, what data is there, which backups to use;
2. stop_services — complete: every service still running; database: the services that write
   to it (the gateway stays up, SPEC §8); objects: none (the plan keeps them up);
3. restore_infrastructure — start the infrastructure components (PostgreSQL, Redis, S3, WAL
   streaming) where not healthy, recreating lost data folders (a folder that holds no
   cluster is moved aside, never deleted);
4. restore_database — complete failure: the newest base backup plus the streamed WAL, replayed
   to the latest point (SPEC §7; or to ``--to``); corrupted database: the newest verified dump
   (or, with ``--to``, the base backup + WAL up to that time); ``--backup`` names either. A
   refused backup falls back to the next older one, a failed replay to the dumps;
5. restore_buckets — the same per application bucket, ``overwrite=false``, all at once and
   (whole stack) begun beside the database restore (:mod:`.overlap`); then the outbox replay;
6. start_services — the schema migrated (``autograph migrate``; the restores already migrated
   what they restored), then every application service not healthy, each once its
   dependencies are healthy, each waited on (whole stack: begun beside the bucket restore,
   as in the objects scenario the services run while buckets are restored);
7. verify — health of all, login, diagram create and read, object references intact.

The backup and restore work is the backup managers'; this module only orders and records it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

from autograph.clock import Clock, utc_now
from autograph.dr.alerts import notifications
from autograph.dr.models import WHOLE_STACK, ProgressFn, StepRecord, no_progress
from autograph.dr.ops.steps import Operation, Outcome, Skip, Step, StepContext
from autograph.dr.recovery import accounts, backups, checks, consistent, live, offsite
from autograph.dr.recovery.consistent import RecoveryPoint
from autograph.dr.recovery.options import RecoveryOptions
from autograph.dr.recovery.overlap import Background
from autograph.dr.recovery.report import RecoveryReport, write_recovery_report
from autograph.dr.recovery.start import (
    ready_for_dump,
    set_aside_broken_cluster,
    start_components,
    start_services,
)
from autograph.dr.recovery.step_data import Assessment, DatabaseMethod, RecoveryPlan
from autograph.errors import AutographError, InvalidInput, OperationFailed
from autograph.s3.boto import app_client
from autograph.stack.components import Component
from autograph.stack.infra import postgres_data_dir
from autograph.stack.lifecycle import Stack

DEFAULT_TIMEOUTS = {
    "assess": 120.0, "stop_services": 180.0, "restore_infrastructure": 300.0,
    "restore_database": 3600.0, "restore_buckets": 3600.0, "start_services": 600.0,
    "verify": 300.0,
}


class Recovery:
    """One recovery run over a stack."""

    def __init__(self, stack: Stack, options: RecoveryOptions, *, clock: Clock = utc_now,
                 state_path: Path | None = None) -> None:
        self.stack = stack
        self.settings = stack.settings
        self.options = options
        self.clock = clock
        self.state_path = state_path or live.state_path(self.settings.dr_dir)
        self._reference_scan: Future[dict[str, Any]] | None = None
        self._buckets: Background | None = None  # the bucket restore, begun beside the database
        self._services: Background | None = None  # the service starts, begun beside the buckets

    # The steps --------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        """The seven steps, with their timeouts and failure advice."""
        limits = {**DEFAULT_TIMEOUTS, **self.options.timeouts}
        table = [
            ("assess", self._assess, "check the backup folder and S3 credentials"),
            ("stop_services", self._stop_services, "stop them with `autograph stop NAME`"),
            ("restore_infrastructure", self._restore_infrastructure,
             "see the component's log (`autograph logs NAME`); fix it and re-run"),
            ("restore_database", self._restore_database,
             "name an older verified backup with --backup, or check `autograph backup db list`"),
            ("restore_buckets", self._restore_buckets,
             "name an older bucket backup with --backup, or check the S3 server"),
            ("start_services", self._start_services,
             "see the service's log (`autograph logs NAME`) or run `autograph migrate`; fix it "
             "and re-run"),
            ("verify", self._verify, "see the failed checks in the report and the service logs"),
        ]
        return [Step(name, run, limits[name], advice) for name, run, advice in table]

    def operation(self) -> Operation:
        """The resumable operation (state under HOME/dr/recovery)."""
        return Operation("recovery", self.steps(), params=self.options.params(),
                         state_path=self.state_path, clock=self.clock)

    def run(self, progress: ProgressFn = no_progress,
            on_step: Callable[[StepRecord], None] | None = None,
            fresh: bool = False) -> RecoveryReport:
        """Run (or resume) the recovery and write its report.

        Raises Conflict when another recovery runs or one with other parameters is pending
        (unless ``fresh``). A failed step does not raise: the report names it.
        """
        operation = self.operation()
        if fresh:
            operation.discard()
        result = operation.run(progress, on_step=on_step)
        issues = [issue for step in result.steps for issue in step.data.get("issues", [])]
        report = RecoveryReport(
            scenario=self.options.scenario, params=result.params, status=result.status,
            started_at=result.started_at, finished_at=result.finished_at, steps=result.steps,
            failed_step=result.failed_step, next_action=result.next_action, issues=issues,
            sources=offsite.sources(self.settings, {s.name: s.data for s in result.steps}),
            notifications=notifications.between(notifications.log_path(self.settings.dr_dir),
                                                result.started_at, result.finished_at))
        report.report_dir = str(write_recovery_report(report, self.settings.dr_dir))
        return report

    # 1. assess --------------------------------------------------------------------------
    def _assess(self, ctx: StepContext) -> Outcome:
        rows = {row.name: row for row in self.stack.ps()}
        down = [name for name, row in rows.items() if not row.healthy]
        point = consistent.choose_point(self.settings, self.stack.creds, self.options.to,
                                        with_s3="s3" not in down
                                        or bool(self.settings.backup_s3_endpoint))
        plan = backups.plan(self.stack, replace(self.options, to=point.point),
                            s3_up="s3" not in down)
        plan.method = self._database_method(plan)
        found = Assessment(
            components={name: {"state": row.state, "healthy": row.healthy,
                               "detail": row.detail[:120]} for name, row in rows.items()},
            down=down, point=point, plan=plan,
            offsite=(offsite.probe(self.stack.settings) if self.options.scenario == "machine"
                     else None),
            postgres_cluster=(postgres_data_dir(self.settings) / "PG_VERSION").exists())
        if point.consistent is not True and self.options.scenario != "database":
            found.issues.append(f"not a consistent point: {point.note}")
        wanted = plan.base if plan.method == "physical" else plan.database
        if self.options.scenario in (*WHOLE_STACK, "database") and not wanted:
            raise OperationFailed("no verified database backup to restore"
                                  + backups.why_none(plan, "database"))
        if self.options.scenario in (*WHOLE_STACK, "objects"):
            missing = [b for b in self.settings.app_buckets if not plan.buckets.get(b)]
            if missing:
                found.issues.append(f"no verified backup of bucket(s) {', '.join(missing)}"
                                    "; they will be left as found")
        if self.options.scenario == "objects" and "postgres" in down:
            found.issues.append("PostgreSQL is down too: consider --scenario complete")
        detail = (f"down: {', '.join(down)}" if down else "every component healthy")
        detail += f"; {point.summary()}"
        chosen = wanted[:1] if self.options.scenario != "objects" else []
        chosen += [v[0] for v in plan.buckets.values() if v]
        return Outcome(f"{detail}; backups: {', '.join(chosen) or 'none'}", found.as_data())

    def _database_method(self, plan: RecoveryPlan) -> DatabaseMethod:
        """``physical`` (base backup + WAL) for a complete failure, or with ``--to`` for a
        corrupted database; else ``dump``. Raises InvalidInput for a base backup named for a
        corrupted database without ``--to`` (replaying to the end would replay the damage)."""
        if not plan.base:
            return "dump"
        if self.options.scenario in WHOLE_STACK or self.options.to is not None:
            return "physical"
        if not plan.database:  # only a named base backup is left
            raise InvalidInput("only base backups to restore from: recovering a corrupted "
                               "database from one needs --to (a time before the corruption); "
                               "the latest point has the corruption too")
        return "dump"

    # 2. stop services -------------------------------------------------------------------
    def _stop_services(self, ctx: StepContext) -> Outcome:
        scenario = self.options.scenario
        if scenario == "objects":
            raise Skip("scenario objects: services keep running (the plan's Scenario 3)")
        keep = {"gateway"} if scenario == "database" else set()
        stopped = []
        if self.stack.supervisor.running():
            states = self.stack.supervisor.all_info()
            for component in reversed(self.stack.components):
                if component.kind != "service" or component.name in keep:
                    continue
                info = states.get(component.name)
                if info and info.state in ("RUNNING", "STARTING", "BACKOFF"):
                    self.stack.stop(component.name)
                    stopped.append(component.name)
        if not stopped:
            raise Skip("no application service was running")
        return Outcome(f"stopped {', '.join(stopped)}", {"stopped": stopped})

    # 3. infrastructure ------------------------------------------------------------------
    def _restore_infrastructure(self, ctx: StepContext) -> Outcome:
        physical = ctx.model("assess", Assessment).plan.method == "physical"
        rebuilt = {"postgres", "walstream"} if physical else set()
        todo = [c for c in self._unhealthy("infrastructure") if c.name not in rebuilt]
        if not todo:
            raise Skip("every infrastructure component healthy"
                       + (" (PostgreSQL is rebuilt from its base backup next)" if physical
                          else ""), {"healthy_at": {}})
        moved = []
        if any(c.name == "postgres" for c in todo):
            moved = set_aside_broken_cluster(postgres_data_dir(self.settings), self.clock)
        started = start_components(self.stack, todo, self.clock)
        shown = ", ".join(f"{n} {s:.1f} s" for n, s in started.seconds.items())
        issues = [f"moved a broken data folder aside: {m}" for m in moved]
        return Outcome(f"started {shown}", {"seconds": started.seconds,
                                            "healthy_at": started.healthy_at,
                                            "moved_aside": moved, "issues": issues})

    def _unhealthy(self, kind: str) -> list[Component]:
        """The components of ``kind`` not healthy now; one whose process is not running is
        not probed (a probe of a dead server can take seconds of retries)."""
        states = self.stack.supervisor.all_info()
        found = []
        for component in self.stack.components:
            if component.kind != kind:
                continue
            info = states.get(component.name)
            running = info is not None and info.state in ("RUNNING", "STARTING")
            if (component.managed and not running) or not component.health().healthy:
                found.append(component)
        return found

    # 4. database ------------------------------------------------------------------------
    def _restore_database(self, ctx: StepContext) -> Outcome:
        if self.options.scenario == "objects":
            raise Skip("scenario objects: the database is not restored")
        assessed = ctx.model("assess", Assessment)
        if self.options.scenario in WHOLE_STACK:  # one recovery point: order does not matter
            plan_buckets = assessed.plan.buckets
            self._buckets = Background(
                lambda: backups.restore_buckets(self.stack, plan_buckets), "restore-buckets")
        try:
            return self._database(assessed)
        except BaseException:
            if self._buckets is not None:
                self._buckets.settle()
            raise

    def _database(self, assessed: Assessment) -> Outcome:
        plan = assessed.plan
        issues: list[str] = []
        if plan.method == "physical":
            had_cluster = (postgres_data_dir(self.settings) / "PG_VERSION").exists()
            try:
                outcome = self._recover_to_point(plan.base, assessed.point)
                gap = outcome["result"].get("wal_gap")
                outcome["issues"] = [*outcome["issues"], *([gap] if gap else []),
                                     *self._usable_with_current_secrets()]
                return Outcome(f"recovered {outcome['backup']} + streamed WAL to "
                               f"{outcome['result']['replayed_to']} in "
                               f"{outcome['restore_seconds']:.1f} s", outcome)
            except OperationFailed as exc:
                if not plan.database:
                    raise
                issues.append(f"point-in-time recovery failed ({exc.message}); restored the "
                              "newest verified dump instead")
                ready_for_dump(self.stack, had_cluster, self.clock)
        outcome = backups.restore_database(self.stack, plan.database)
        outcome["issues"] = outcome.get("issues", []) + issues
        if self.options.scenario in WHOLE_STACK:
            outcome["issues"] += self._usable_with_current_secrets()
        detail = f"restored {outcome['backup']} in {outcome['restore_seconds']:.1f} s"
        if outcome["refused"]:
            detail += f" (after refusing {len(outcome['refused'])} newer)"
        return Outcome(detail, outcome)

    def _usable_with_current_secrets(self) -> list[str]:
        """The restored users table made usable with this machine's secrets (see
        :mod:`accounts`); returns the issue to report, if any."""
        done = accounts.reset_lost_admin_password(self.settings, self.stack.creds)
        return [done] if done else []

    def _recover_to_point(self, bases: list[str], point: RecoveryPoint) -> dict[str, Any]:
        """Replay to the recovery point. When the point is the protected one (no ``--to``)
        and the WAL ends before it (nothing was written after it), replay to the end: every
        commit it holds is then before the protected point, so still consistent."""
        target = point.point
        try:
            return backups.recover_physical(self.stack, bases, target, self.clock)
        except OperationFailed as exc:
            if self.options.to is not None or target is None:
                raise
            outcome = backups.recover_physical(self.stack, bases, None, self.clock)
            outcome["issues"] = [*outcome["issues"], f"replay to the protected point failed "
                                 f"({exc.message}); replayed to the end of the WAL"]
            return outcome

    # 5. buckets -------------------------------------------------------------------------
    def _restore_buckets(self, ctx: StepContext) -> Outcome:
        if self.options.scenario == "database":
            raise Skip("scenario database: buckets are not restored")
        plan = ctx.model("assess", Assessment).plan
        if self.options.scenario in WHOLE_STACK:  # their dependencies are back (see .overlap)
            self._services = Background(lambda: start_services(
                self.stack, self.clock, self._unhealthy("service")), "start-services")
        job, self._buckets = self._buckets, None
        try:
            outcome = (job.result() if job is not None
                       else backups.restore_buckets(self.stack, plan.buckets))
            outcome.update(beside_database=job is not None,
                           services_starting=bool(self._services))
            self._replay_outbox(outcome)
        except BaseException:  # nothing is left starting behind a failed step
            if self._services is not None:
                self._services.settle()
            raise
        replayed = sum(outcome["outbox"]["restored"].values())
        if not outcome["buckets"] and not replayed:
            raise Skip("no bucket backup to restore", outcome)
        counts = ", ".join(f"{b} {v['restored']}+{v['skipped']} skipped"
                           for b, v in outcome["buckets"].items())
        counts += f"; {replayed} objects from the outbox"
        beside = " (beside the database restore)" if job is not None else ""
        return Outcome(f"{counts} in {outcome['restore_seconds']:.1f} s{beside}", outcome)

    def _replay_outbox(self, outcome: dict[str, Any]) -> None:
        began = time.monotonic()
        try:
            outcome["outbox"] = consistent.replay_outbox(
                self.settings, self.stack.creds, list(self.settings.app_buckets),
                app_client(self.settings, self.stack.creds))
        except AutographError as exc:  # the reference scan then shows what is missing
            outcome["outbox"] = {"restored": {}, "error": exc.message}
            outcome["issues"].append(f"objects written since the snapshots were not put "
                                     f"back from the outbox: {exc.message}")
        outcome["outbox"]["seconds"] = round(time.monotonic() - began, 3)

    # 6. services ------------------------------------------------------------------------
    def _start_services(self, ctx: StepContext) -> Outcome:
        job, self._services = self._services, None
        if not self._unhealthy("infrastructure"):  # the scan needs PostgreSQL and S3 only
            self._reference_scan = checks.start_reference_scan(self.stack)  # buckets are back
        started = (job.result() if job is not None
                   else start_services(self.stack, self.clock, self._unhealthy("service")))
        shown = ", ".join(f"{n} {s:.1f} s" for n, s in started["seconds"].items())
        beside = " (begun beside the bucket restore)" if job is not None else ""
        return Outcome(f"{started['schema']}; started {shown}{beside}",
                       {**started, "beside_buckets": job is not None})

    # 7. verify --------------------------------------------------------------------------
    def _verify(self, ctx: StepContext) -> Outcome:
        scan, self._reference_scan = self._reference_scan, None
        found = checks.verify(self.stack, self.clock, scan)
        failed = [name for name, check in found.items() if not check["ok"]]
        point = ctx.model("assess", Assessment).point
        asked_inconsistent = point.consistent is False and self.options.to is not None
        data: dict[str, Any] = {"checks": found, "issues": [],
                                "point": point.model_dump(mode="json")}
        data["orphans"] = self._orphans()
        excused = asked_inconsistent
        if "references" in failed:
            corrupt, said = self._judge_references(ctx)
            excused = excused or not corrupt
            found["references"].update(corruption=not excused, detail=said)
            if asked_inconsistent:  # said before the recovery started
                data["issues"].append(f"{said} (expected: --to is after the newest "
                                      "protected point)")
            elif not corrupt:
                data["issues"].append(said)
        blocking = [name for name in failed if name != "references" or not excused]
        if blocking:
            raise OperationFailed("; ".join(f"{n}: {found[n]['detail']}" for n in blocking))
        return Outcome(f"{len(found)} checks green", data)

    def _judge_references(self, ctx: StepContext) -> tuple[bool, str]:
        """Whether the dangling rows are corruption, and the rows, listed."""
        try:
            dangling = consistent.dangling_rows(self.settings, self.stack.creds,
                                                app_client(self.settings, self.stack.creds))
        except AutographError as exc:
            return True, f"data corruption (rows could not be listed: {exc.message})"
        outbox = (ctx.data("restore_buckets") or {}).get("outbox") or {}
        return consistent.judge_dangling(dangling, outbox.get("unprotected_keys", []),
                                         buckets_only=self.options.scenario == "objects")

    def _orphans(self) -> dict[str, Any]:
        """Objects whose rows were lost (written after the point): reported, cleaned only
        when asked."""
        try:
            return consistent.orphans(self.settings, self.stack.creds,
                                      app_client(self.settings, self.stack.creds),
                                      clean=self.options.clean_orphans)
        except AutographError as exc:
            return {"checked": False, "why": exc.message}

