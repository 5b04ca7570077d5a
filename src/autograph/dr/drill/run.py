"""The automated DR drill (``python test_disaster_recovery.py --simulate``, ``autograph dr
drill``): load data, keep a writer committing, take backups, inject a scenario's failure, run
the recovery, measure RTO, RPO, restore times and integrity, judge the plan's success criteria,
and write the reports.

By default the drill runs in a sandbox: a stack of its own in a temporary home on free ports,
so the stack it was started beside is never touched. ``live=True`` runs it on the configured
stack (destroying its data by design; the CLI demands an explicit confirmation).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograph.clock import Clock, utc_now
from autograph.config import Settings, load_settings
from autograph.dr.drill import faults, offsite
from autograph.dr.drill.measure import Evidence, evaluate
from autograph.dr.drill.models import DrillReport, Targets
from autograph.dr.drill.report import report_folder, write_report
from autograph.dr.drill.rpo import data_loss, parse_log
from autograph.dr.drill.workload import (
    Account,
    ApiClient,
    Dataset,
    DatasetSpec,
    Writer,
    check_dataset,
    load_dataset,
    new_account,
    surviving_diagrams,
    surviving_objects,
)
from autograph.dr.models import SCENARIOS, ProgressFn, Scenario, StepRecord, no_progress
from autograph.dr.ops.steps import Operation, Step
from autograph.dr.recovery import integrity
from autograph.dr.recovery.checks import uses_gateway, verify
from autograph.dr.recovery.options import RecoveryOptions
from autograph.dr.recovery.run import Recovery
from autograph.errors import InvalidInput, OperationFailed
from autograph.s3.boto import app_client
from autograph.stack.health import port_free, private_port_range
from autograph.stack.lifecycle import Stack

MACHINE_DATABASE_RPO = 60.0
SERVICE_PORTS = ("gateway", "auth", "diagram", "ai", "collaboration", "export", "git",
                 "integrations", "svg", "frontend")


@dataclass(frozen=True)
class DrillOptions:
    """What to drill and how."""

    scenarios: tuple[Scenario, ...] = ("complete",)
    live: bool = False
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    lead_seconds: float = 1.0          # the writer commits this long before the first backup
    window_seconds: float = 3.0        # the writer commits this long after the last backup
    backup_rounds: int = 1             # backups taken, oldest first, writes between them
    corrupt_latest: bool = False       # bit rot in every copy of the newest backups
    database_fault: faults.DatabaseFault = "corrupt"
    targets: Targets | None = None
    keep_sandbox: bool = False
    recovery_timeouts: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [s for s in self.scenarios if s not in SCENARIOS]
        if unknown or not self.scenarios:
            raise InvalidInput(f"unknown scenario(s) {unknown}: choose from "
                               f"{', '.join(SCENARIOS)} or all")
        if self.backup_rounds < 1 or (self.corrupt_latest and self.backup_rounds < 2):
            raise InvalidInput("corrupting the latest backups needs at least 2 backup rounds")


# The sandbox ---------------------------------------------------------------------------------

def _free_ports(avoid: set[int], singles: int, block: int) -> tuple[list[int], int]:
    """``singles`` free ports and the first of ``block`` consecutive free ones."""
    rng = random.Random()
    chosen: list[int] = []
    ports = private_port_range()

    def usable(port: int) -> bool:
        return port not in avoid and port not in chosen and port_free("127.0.0.1", port)

    while len(chosen) < singles:
        port = rng.randrange(ports.start, ports.stop)
        if usable(port):
            chosen.append(port)
    while True:
        first = rng.randrange(ports.start, ports.stop - block)
        if all(usable(p) for p in range(first, first + block)):
            return chosen, first


def sandbox_settings(base: Settings, home: Path) -> Settings:
    """The base settings moved into ``home`` on free ports, with everything that could reach
    outside the sandbox (backup folder, external S3 endpoints, alert channels) reset."""
    avoid = {base.pg_port, base.redis_port, *range(base.s3_port, base.s3_port + 8)}
    avoid |= {base.service_port(name) for name in SERVICE_PORTS}
    singles, s3_port = _free_ports(avoid, 2 + len(SERVICE_PORTS), 8)
    values: dict[str, Any] = {
        name: getattr(base, name) for name in type(base).model_fields
        if name not in ("home",)
    }
    values.update({
        "home": home, "pg_port": singles[0], "redis_port": singles[1], "s3_port": s3_port,
        "backup_dir": None, "s3_endpoint": None, "s3_access_key": None, "s3_secret_key": None,
        "backup_s3_endpoint": None, "backup_s3_access_key": None,
        "backup_s3_secret_key": None, "offsite_s3_endpoint": None,
        "offsite_s3_access_key": None, "offsite_s3_secret_key": None, "offsite_key": None,
        "offsite_s3_prefix": "", "alerts_log": None, "smtp_host": None,
        "slack_webhook_url": None, "alert_email_to": (), "admin_password": None,
        "admin_api_key": None, "scheduler_enabled": False,  # the drill takes its own
        # External infrastructure (SPEC §11) stays outside: the sandbox runs its own.
        "host": "127.0.0.1", "pg_host": None, "pg_password": None, "pg_replication_user": None,
        "pg_replication_password": None, "redis_url": None, "service_hosts": {},
        "secrets_path": None,
    })
    for name, port in zip(SERVICE_PORTS, singles[2:], strict=True):
        values[f"{name}_port"] = port
    return load_settings(**values)


def make_sandbox(base: Settings) -> Stack:
    """A stack of its own in a new temporary home (traversable by the PostgreSQL user), its
    backups copied to an off-site S3 server of its own (started here, see :mod:`offsite`)."""
    home = Path(tempfile.mkdtemp(prefix="autograph-drill-"))
    os.chmod(home, 0o755)
    settings = sandbox_settings(base, home)
    used = {settings.pg_port, settings.redis_port, *range(settings.s3_port,
                                                          settings.s3_port + 8)}
    used |= {settings.service_port(name) for name in SERVICE_PORTS}
    _, offsite_port = _free_ports(used, 0, 8)
    try:
        extra = offsite.start_offsite(base, home, offsite_port)
        values = {name: getattr(settings, name) for name in type(settings).model_fields}
        return Stack(load_settings(**{**values, **extra}))
    except BaseException:  # an interrupted drill (stopped from the console) too
        server = offsite.offsite_of(home)
        if server is not None:
            offsite.stop_offsite(server)
        shutil.rmtree(home, ignore_errors=True)
        raise


def remove_sandbox(stack: Stack) -> None:
    """Stop the sandbox's processes and delete its home."""
    with contextlib.suppress(Exception):
        stack.down()
    with contextlib.suppress(Exception):
        faults.kill_everything(stack, timeout=5)
    for port in stack.component("s3").ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                path.unlink()
    shutil.rmtree(stack.settings.home_dir, ignore_errors=True)
    server = offsite.offsite_of(stack.settings.home_dir)
    if server is not None:
        offsite.stop_offsite(server)


# One drill -----------------------------------------------------------------------------------

class _Recorder:
    """Runs the drill's own steps one at a time, recording each (a failure stops the drill)."""

    def __init__(self, clock: Clock, progress: ProgressFn) -> None:
        self.clock = clock
        self.progress = progress
        self.steps: list[StepRecord] = []
        self.results: dict[str, StepRecord] = {}

    def run(self, name: str, work: Callable[[], Any], timeout: float = 600.0) -> Any:
        box: dict[str, Any] = {}

        def step(_ctx: Any) -> str:
            box["value"] = work()
            value = box["value"]
            return value if isinstance(value, str) else ""

        result = Operation(f"drill step {name}", [Step(name, step, timeout)],
                           clock=self.clock).run().steps[0]
        self.steps.append(result)
        self.results[name] = result
        self.progress(f"{name}: {result.status} {result.detail}".rstrip(), None)
        if result.status == "failed":
            raise OperationFailed(f"drill step {name} failed: {result.detail}")
        return box.get("value")


def _login_all(api: ApiClient, accounts: list[Account]) -> dict[str, Any]:
    """Log every account in again (sessions may have been lost with Redis)."""
    failed = []
    for account in accounts:
        try:
            account.token = api.login(account.email, account.password)
        except OperationFailed as exc:
            failed.append(f"{account.email}: {exc.message}")
    return {"accounts": len(accounts), "failed": failed}


def take_backups(stack: Stack, label: str, clock: Clock = utc_now) -> dict[str, Any]:
    """A database dump, a base backup (when WAL is streamed), one archive and one snapshot per
    application bucket, named for the drill (snapshots are named by their time)."""
    from autograph.dr.buckets.manager import MinIOBucketBackupManager
    from autograph.dr.buckets.snapshots.manager import SnapshotManager
    from autograph.dr.postgres import DatabaseBackupManager

    stamp = f"{clock():%Y%m%d_%H%M%S}"
    database = DatabaseBackupManager(stack.settings, stack.creds).create(
        f"drill_backup_{stamp}_{label}", tags=("drill",))
    base = None
    if any(c.name == "walstream" for c in stack.components):  # continuous protection on
        from autograph.dr.postgres.physical import PhysicalBackupManager

        base = PhysicalBackupManager(stack.settings, stack.creds).create(
            f"drill_base_{stamp}_{label}", tags=("manual", "drill"))
    buckets = {}
    manager = MinIOBucketBackupManager(stack.settings, stack.creds)
    for bucket in stack.settings.app_buckets:
        entry = manager.create(bucket, name=f"drill_{bucket}_{stamp}_{label}", tags=("drill",))
        buckets[bucket] = entry
    snapshots = SnapshotManager(stack.settings, stack.creds, clock=clock)
    taken = {b: snapshots.take(b).snapshot.name for b in stack.settings.app_buckets}
    return {"database": database, "base": base, "buckets": buckets, "snapshots": taken}


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
    rec = _Recorder(clock, progress)
    targets = options.targets or Targets(rto_seconds=settings.rto_target_seconds,
                                         rpo_seconds=settings.rpo_target_seconds)
    if scenario == "machine":  # SPEC §7: the off-site bounds (WAL closed every 60 s)
        targets = targets.model_copy(update={
            "database_rpo_seconds": min(MACHINE_DATABASE_RPO, targets.rpo_seconds),
            "objects_rpo_seconds": min(settings.snapshot_interval_seconds or
                                       targets.rpo_seconds, targets.rpo_seconds)})
    ev = Evidence(scenario=scenario, targets=targets,
        schedule={"database": _database_interval(stack, scenario),
                  "buckets": int(settings.snapshot_interval_seconds)
                  or settings.bucket_backup_interval_seconds},
        components=[c.name for c in stack.components])
    api = ApiClient(settings, via_gateway=uses_gateway(stack))
    s3 = app_client(settings, stack.creds)
    dataset = Dataset()
    writer: Writer | None = None
    kit: offsite.DrillKit | None = None
    try:
        dataset = rec.run("load_dataset", lambda: load_dataset(
            api, s3, options.dataset, seed=int(started.timestamp()), progress=progress))
        ev.workload["dataset"] = dataset.summary()
        account = new_account("writer")

        def start_writer() -> str:
            nonlocal writer
            api.register(account.email, account.password)
            account.token = api.login(account.email, account.password)
            writer = Writer(api, s3, account, folder / "writes.jsonl", clock=clock)
            writer.start()
            time.sleep(options.lead_seconds)
            return f"writing as {account.email}"

        rec.run("start_writer", start_writer)
        assert writer is not None
        for round_number in range(1, options.backup_rounds + 1):
            def backup_round(n: int = round_number) -> str:
                assert writer is not None
                writer.pause()
                try:
                    shot, settled = settled_fingerprint(stack, s3)
                    taken = take_backups(stack, str(n), clock)
                    after = integrity.fingerprint(settings, stack.creds, s3)
                finally:
                    writer.resume()
                _note_volatile(ev, shot, after, settled)
                for entry in (taken["database"], taken["base"], *taken["buckets"].values()):
                    if entry is not None:
                        ev.at_backup[entry.name] = shot
                for name in taken["snapshots"].values():
                    ev.at_backup[name] = shot
                ev.backups_taken.append({
                    "database": taken["database"].name,
                    "base": taken["base"].name if taken["base"] else None,
                    "buckets": {b: e.name for b, e in taken["buckets"].items()},
                    "snapshots": taken["snapshots"], "at": str(clock())})
                time.sleep(0.5 if n < options.backup_rounds else 0)
                return f"database {taken['database'].name} and {len(taken['buckets'])} buckets"

            rec.run(f"backup_round_{round_number}", backup_round, timeout=3600)
        if options.corrupt_latest:
            rec.run("corrupt_latest_backups", lambda: _corrupt_latest(stack, ev))
        def window() -> str:
            time.sleep(options.window_seconds)
            return f"writer ran {options.window_seconds:g} s past the last backup"

        rec.run("write_window", window)

        def stop_and_snapshot() -> str:
            assert writer is not None
            writer.pause()
            try:
                ev.before, settled = settled_fingerprint(stack, s3)
                ev.dangling_before = integrity.dangling_references(settings, stack.creds,
                                                                   ev.before.objects,
                                                                   keep_keys=True)
            finally:
                writer.resume()  # it writes on, right through the failure (issue 12)
            if not settled:
                ev.issues.append("the data kept changing after the writer paused (another "
                                 "writer is active): comparisons may show its changes")
            # what the writer changes after this fingerprint is judged by the RPO from its
            # acknowledged writes and by the reference scan, not by this comparison
            ev.volatile["tables"] = sorted(set(ev.volatile.get("tables", [])) | WRITER_TABLES)
            ev.volatile["buckets"] = sorted(set(ev.volatile.get("buckets", []))
                                            | WRITER_BUCKETS)
            return "fingerprint taken; the writer writes on through the failure"

        rec.run("snapshot_before_failure", stop_and_snapshot)
        if scenario == "machine":
            kit = rec.run("export_kit", lambda: offsite.export_kit(stack))
        time.sleep(WRITE_THROUGH_SECONDS)  # steady row + object writes up to the failure
        ev.failure_at = clock()
        ev.fault = rec.run("inject_failure", lambda: _inject(stack, scenario, options))
        writer.stop()  # its writes during the failure were refused; recovery runs without it
        ev.workload["writer"] = writer.stats()
        _recover(stack, scenario, options, ev, rec, clock, progress, kit)
        _measure(stack, api, s3, account, dataset, writer, ev, rec, folder)
    except OperationFailed as exc:
        ev.issues.append(exc.message)
    finally:
        if writer is not None:
            writer.stop()
        api.close()
        if kit is not None:
            kit.remove()
    report = evaluate(ev, rec.steps, started=started, finished=clock(),
                      mode="live" if live else "sandbox")
    write_report(report, dr_dir)
    return report


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


WRITE_THROUGH_SECONDS = 2.0
WRITER_TABLES = frozenset({"diagrams", "diagram_versions", "uploads", "object_outbox",
                           "object_deletions"})
WRITER_BUCKETS = frozenset({"diagrams", "uploads"})


def settled_fingerprint(stack: Stack, s3: Any, tries: int = 8, pause: float = 1.2
                        ) -> tuple[integrity.Fingerprint, bool]:
    """A fingerprint once two in a row, ``pause`` apart, agree: background followers (the
    webhook watcher's cursor polls every second) have caught up. False if it never settled."""
    shot = integrity.fingerprint(stack.settings, stack.creds, s3)
    for _ in range(tries):
        time.sleep(pause)
        again = integrity.fingerprint(stack.settings, stack.creds, s3)
        if again.tables == shot.tables and again.objects == shot.objects:
            return again, True
        shot = again
    return shot, False


def _note_volatile(ev: Evidence, before: integrity.Fingerprint,
                   after: integrity.Fingerprint, settled: bool) -> None:
    """Tables and buckets that changed while a backup ran: their state at the backup is not
    known exactly, so they cannot be compared with what a restore brings back."""
    tables = {t for t in set(before.tables) | set(after.tables)
              if before.tables.get(t) != after.tables.get(t)}
    buckets = {b for b in set(before.objects) | set(after.objects)
               if before.objects.get(b) != after.objects.get(b)}
    ev.volatile["tables"] = sorted(set(ev.volatile.get("tables", [])) | tables)
    ev.volatile["buckets"] = sorted(set(ev.volatile.get("buckets", [])) | buckets)
    if tables or buckets or not settled:
        ev.issues.append(f"data changed while a backup was taken (tables {sorted(tables)}, "
                         f"buckets {sorted(buckets)}): not compared exactly")


def _corrupt_latest(stack: Stack, ev: Evidence) -> str:
    from autograph.dr.catalog import open_catalog

    latest = ev.backups_taken[-1]
    damaged: list[str] = []
    database = open_catalog(stack.settings, stack.creds, "database").get(latest["database"])
    damaged += faults.corrupt_backup(stack, database)
    if latest["base"]:
        base = open_catalog(stack.settings, stack.creds, "basebackup").get(latest["base"])
        damaged += faults.corrupt_backup(stack, base)
    buckets = open_catalog(stack.settings, stack.creds, "bucket")
    for name in latest["buckets"].values():
        damaged += faults.corrupt_backup(stack, buckets.get(name))
    for name in latest["snapshots"].values():
        damaged += faults.corrupt_snapshot(stack, name)
    ev.corrupted = damaged
    return f"flipped a byte in {len(damaged)} copies"


def _inject(stack: Stack, scenario: Scenario, options: DrillOptions) -> dict[str, Any]:
    if scenario == "complete":
        return faults.complete_failure(stack)
    if scenario == "database":
        return faults.database_failure(stack, options.database_fault)
    if scenario == "machine":
        return faults.machine_failure(stack)
    return faults.objects_failure(stack)


def _recover(stack: Stack, scenario: Scenario, options: DrillOptions, ev: Evidence,
             rec: _Recorder, clock: Clock, progress: ProgressFn,
             kit: offsite.DrillKit | None = None) -> None:
    """Run the recovery; after the restores (before any service writes), fingerprint what came
    back. That pause is measured and left out of the RTO."""

    def on_step(result: StepRecord) -> None:
        if result.name != "restore_buckets":
            return
        start = time.monotonic()
        try:
            ev.after = integrity.fingerprint(stack.settings, stack.creds,
                                             app_client(stack.settings, stack.creds))
            ev.dangling = integrity.dangling_references(stack.settings, stack.creds,
                                                        ev.after.objects, keep_keys=True)
            ev.restored_keys = _restored_keys(stack, ev, result.data.get("buckets", {}))
        except Exception as exc:  # evidence we could not take is reported, not fatal
            ev.issues.append(f"could not fingerprint the restored data: {exc}")
        ev.pause_seconds += time.monotonic() - start

    target = stack
    if kit is not None:  # a bare home: the kit first (as `dr recover --kit` does)
        target = rec.run("install_kit", lambda: _install_kit(stack, kit))
    recovery = Recovery(target, RecoveryOptions(scenario, timeouts=options.recovery_timeouts),
                        clock=clock)
    report = recovery.run(lambda m, f: progress(f"recover.{m}", f), on_step=on_step,
                          fresh=True)
    ev.recovery = report
    rec.steps += [step.model_copy(update={"name": f"recover.{step.name}", "data": {}})
                  for step in report.steps]


def _install_kit(stack: Stack, kit: offsite.DrillKit) -> Stack:
    """Open the kit, check it against the off-site store, write its secrets into the home."""
    from autograph.dr.kit.document import read_kit
    from autograph.dr.recovery.machine import prepare_machine

    settings, _prepared = prepare_machine(read_kit(kit.path, kit.passphrase), stack.settings)
    return Stack(settings)


def _restored_keys(stack: Stack, ev: Evidence,
                   restored: dict[str, Any]) -> dict[str, set[str]]:
    """The keys each restored bucket backup held: what the restore could bring back."""
    from autograph.dr.buckets.snapshots.store import SnapshotStore

    found: dict[str, set[str]] = {}
    for bucket, done in restored.items():
        name = done.get("backup") or ""
        if done.get("method") == "snapshot":
            snapshot = SnapshotStore(stack.settings, stack.creds).load(name)[0]
            found[bucket] = {o.key for o in snapshot.objects}
        elif name in ev.at_backup:
            found[bucket] = set(ev.at_backup[name].objects.get(bucket, {}))
    return found


def _measure(stack: Stack, api: ApiClient, s3: Any, writer_account: Account, dataset: Dataset,
             writer: Writer, ev: Evidence, rec: _Recorder, folder: Path) -> None:
    """RPO from the writer's log; the dataset read back; logins of the users."""
    if ev.recovery is None or ev.recovery.status != "passed":
        ev.verify_checks = verify(stack, utc_now)
        return

    def rpo() -> str:
        writes = parse_log((folder / "writes.jsonl").read_text().splitlines()
                           if (folder / "writes.jsonl").exists() else [])
        writer_account.token = api.login(writer_account.email, writer_account.password)
        ev.rpo_database = data_loss("database", writes,
                                    surviving_diagrams(api, writer_account), ev.failure_at)
        ev.rpo_objects = data_loss("object", writes, surviving_objects(
            s3, writer.bucket, writer.prefix), ev.failure_at)
        return (f"database: {ev.rpo_database.lost} of {ev.rpo_database.acknowledged} lost; "
                f"objects: {ev.rpo_objects.lost} of {ev.rpo_objects.acknowledged} lost")

    with contextlib.suppress(OperationFailed):
        rec.run("measure_rpo", rpo)

    def read_back() -> str:
        ev.relogin = _login_all(api, dataset.accounts)
        ev.dataset_check = check_dataset(api, s3, dataset)
        bad = sum(v["mismatched"] for k, v in ev.dataset_check.items() if k != "problems")
        return f"dataset read back: {bad} mismatches; {len(ev.relogin['failed'])} logins failed"

    with contextlib.suppress(OperationFailed):
        rec.run("check_dataset", read_back)


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
            reports.append((report, report_folder(dr_dir, report.started_at, scenario)))
            if report.rto_seconds is None and scenario != options.scenarios[-1]:
                progress("recovery failed: later scenarios skipped", None)
                break
    finally:
        if not options.live and not options.keep_sandbox:
            remove_sandbox(stack)
    return reports

