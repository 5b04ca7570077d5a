"""The drill from the failure on: the recovery run (the restored data fingerprinted before the
recovery's own checks write), then the RPO from the writer's log, the dataset read back and
the users logged in again."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from autograph.clock import utc_now
from autograph.dr.drill import offsite
from autograph.dr.drill.before_failure import DrillRun
from autograph.dr.drill.evidence import Evidence
from autograph.dr.drill.rpo import data_loss, parse_log
from autograph.dr.drill.workload import (
    Account,
    check_dataset,
    surviving_diagrams,
    surviving_objects,
)
from autograph.dr.models import StepRecord
from autograph.dr.recovery import integrity
from autograph.dr.recovery.checks import verify
from autograph.dr.recovery.client import ApiClient
from autograph.dr.recovery.options import RecoveryOptions
from autograph.dr.recovery.run import Recovery
from autograph.errors import OperationFailed
from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack


def recover(run: DrillRun) -> None:
    """Run the recovery; after the restores (before the verify step writes), fingerprint what
    came back. That pause is measured and left out of the RTO, unless the services were
    starting meanwhile (a whole-stack recovery starts them beside the bucket restore)."""
    stack, ev, rec, kit, progress = run.stack, run.ev, run.rec, run.kit, run.progress

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
        if not result.data.get("services_starting"):  # else the services started meanwhile:
            ev.pause_seconds += time.monotonic() - start  # the pause stays in the RTO

    target = stack
    if kit is not None:  # a bare home: the kit first (as `dr recover --kit` does)
        target = rec.run("install_kit", lambda: _install_kit(stack, kit))
    run.recovered = target
    recovery = Recovery(target, RecoveryOptions(run.scenario,
                                                timeouts=run.options.recovery_timeouts),
                        clock=run.clock)
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


def measure(run: DrillRun) -> None:
    """RPO from the writer's log; the dataset read back; logins of the users."""
    stack, api, s3, ev, rec, folder = run.stack, run.api, run.s3, run.ev, run.rec, run.folder
    writer_account, dataset, writer = run.account, run.dataset, run.writer
    if ev.recovery is None or ev.recovery.status != "passed":
        ev.verify_checks = verify(stack, utc_now)
        return

    def rpo() -> str:
        assert writer is not None
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



def _login_all(api: ApiClient, accounts: list[Account]) -> dict[str, Any]:
    """Log every account in again (sessions may have been lost with Redis)."""
    failed = []
    for account in accounts:
        try:
            account.token = api.login(account.email, account.password)
        except OperationFailed as exc:
            failed.append(f"{account.email}: {exc.message}")
    return {"accounts": len(accounts), "failed": failed}
