"""RTO of the complete-failure scenario on a realistic volume (not a timed test).

A stack of its own (temporary home, free ports) is loaded with pgbench scale 20, 20,000
diagrams through the API (each with its canvas in the ``diagrams`` bucket) and 5,000 objects
(~250 MB, half compressible JSON, half random bytes) in ``exports``; backed up; then every
process is SIGKILLed and every data folder deleted, and ``autograph dr recover --scenario
complete`` runs. Prints the RTO, each step's share, and the orchestration overhead: the RTO
minus the wall time of the restore phase (the union of the restore commands' intervals: the
database restore and each bucket's run at the same time, so their durations are not summed).

With ``--scenario machine`` the whole home is deleted instead and the recovery runs from the
sandbox's off-site S3 server and the kit; ``--scenario both`` times complete, then machine.

    .venv/bin/python bench/dr_rto.py [--scale 20] [--diagrams 20000] [--objects 5000]
                                     [--scenario complete|machine|both]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from autograph import commands
from autograph.clock import utc_now
from autograph.config import load_settings
from autograph.dr.drill import faults as drill_faults
from autograph.dr.drill import offsite
from autograph.dr.drill.before_failure import take_backups
from autograph.dr.drill.sandbox import make_sandbox, remove_sandbox
from autograph.dr.drill.workload import ApiClient, canvas, new_account
from autograph.dr.kit.document import read_kit
from autograph.dr.recovery.checks import uses_gateway
from autograph.dr.recovery.machine import prepare_machine
from autograph.dr.recovery.options import RecoveryOptions
from autograph.dr.recovery.run import Recovery
from autograph.errors import OperationFailed
from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack


def load_pgbench(stack: Stack, scale: int) -> None:
    settings = stack.settings
    commands.run([str(settings.pg_bin / "pgbench"), "-i", "-q", "-s", str(scale), "-h",
                  settings.host, "-p", str(settings.pg_port), "-U", settings.pg_user,
                  settings.pg_database], env={"PGPASSWORD": stack.creds.pg_password},
                 what="pgbench -i", timeout=1800)


def load_diagrams(stack: Stack, count: int, workers: int = 12) -> None:
    api = ApiClient(stack.settings, via_gateway=uses_gateway(stack), timeout=60)
    accounts = [new_account("bench") for _ in range(10)]
    for account in accounts:
        api.register(account.email, account.password)
        account.token = api.login(account.email, account.password)

    retried: list[str] = []

    def one(index: int) -> None:
        rng = random.Random(index)
        for attempt in range(4):  # the loader is not what is measured: a 5xx is retried
            try:
                api.create_diagram(accounts[index % len(accounts)].token, f"Bench {index}",
                                   canvas(rng, 12))
                return
            except OperationFailed as exc:
                if " answered 5" not in exc.message or attempt == 3:
                    raise
                retried.append(exc.message)
                time.sleep(1 + attempt)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(count)))
    api.close()
    if retried:  # said, not hidden: a 5xx under the load is a finding of its own
        print(f"loading: {len(retried)} creates retried after a 5xx, e.g. {retried[0]}")


def load_objects(stack: Stack, count: int, workers: int = 16) -> int:
    s3 = app_client(stack.settings, stack.creds)

    def one(index: int) -> int:
        rng = random.Random(index)
        size = rng.randint(2_000, 98_000)
        if index % 2:
            body = rng.randbytes(size)
        else:
            words = json.dumps([{"id": i, "label": f"node {i}", "x": i * 7}
                                for i in range(size // 40)]).encode()
            body = words[:size]
        s3.put_object(Bucket="exports", Key=f"bench/{index:05d}.bin", Body=body)
        return len(body)

    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(one, range(count)))


def fail_and_recover(stack: Stack, scenario: str, args: argparse.Namespace
                     ) -> dict[str, Any] | None:
    """Inject the scenario's failure, recover, and time it (None: the recovery failed)."""
    kit = None
    if scenario == "machine":
        kit = offsite.export_kit(stack)  # before the failure, as an operator would
    failure_at = utc_now()
    target = stack
    try:
        if kit is not None:
            drill_faults.machine_failure(stack)
            settings, _done = prepare_machine(read_kit(kit.path, kit.passphrase),
                                              stack.settings)
            target = Stack(settings)
        else:
            drill_faults.complete_failure(stack)
        report = Recovery(target, RecoveryOptions(scenario)).run(
            progress=lambda m, _f: print(f"  {m}", flush=True), fresh=True)
    finally:
        if kit is not None:
            kit.remove()
    if report.status != "passed":
        print(f"recovery failed: {report.next_action}", file=sys.stderr)
        return None
    verify = report.steps[-1]
    rto = (verify.started_at - failure_at).total_seconds() + verify.duration_seconds
    steps = {s.name: s for s in report.steps}
    db_data, bucket_data = steps["restore_database"].data, steps["restore_buckets"].data
    db = db_data["result"]["duration_seconds"]
    buckets = bucket_data["restore_seconds"]
    # The restores overlap (buckets beside the database, buckets beside each other): the
    # overhead subtracts the restore phase's wall time, the union of their intervals.
    restores = report.restore_phase_seconds()
    # Components of one priority start together: the steps' wall time is what counts.
    starts = sum(steps[n].duration_seconds for n in ("restore_infrastructure", "start_services"))
    figures = {
        "rto_seconds": round(rto, 2), "database_restore_seconds": db,
        "bucket_restore_seconds": round(buckets, 2),
        "restore_phase_wall_seconds": round(restores, 2),
        "component_start_seconds": round(starts, 2),
        "overhead_seconds": round(rto - restores, 2),
        "overhead_without_starts_seconds": round(rto - restores - starts, 2),
        "steps": {s.name: s.duration_seconds for s in report.steps},
        "sources": report.sources,
    }
    print(f"\nRTO {rto:.1f} s ({scenario} failure; {args.scale} pgbench scale, "
          f"{args.diagrams} diagrams, {args.objects} objects)")
    for step in report.steps:
        print(f"  {step.name:<24} {step.duration_seconds:7.2f} s "
              f"{100 * step.duration_seconds / rto:5.1f} %  {step.detail[:70]}")
    print(f"  restore commands: database {db:.1f} s (base backup + WAL replay + start), "
          f"buckets {buckets:.1f} s (all buckets, wall); together (union of their "
          f"intervals) {restores:.1f} s; other component starts (wall) {starts:.1f} s")
    print(f"  orchestration overhead (RTO - restore phase wall): "
          f"{figures['overhead_seconds']:.1f} s (target <= 10 s); without the component "
          f"starts: {figures['overhead_without_starts_seconds']:.1f} s")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=20)
    parser.add_argument("--diagrams", type=int, default=20_000)
    parser.add_argument("--objects", type=int, default=5_000)
    parser.add_argument("--keep", action="store_true", help="keep the sandbox for inspection")
    parser.add_argument("--scenario", choices=("complete", "machine", "both"),
                        default="complete", help="both: complete, then machine (side by side)")
    args = parser.parse_args()

    stack = make_sandbox(load_settings())
    print(f"sandbox {stack.settings.home_dir}", flush=True)
    figures: dict[str, Any] = {"scale": args.scale, "diagrams": args.diagrams,
                               "objects": args.objects}
    try:
        stack.up()
        t = time.monotonic()
        load_pgbench(stack, args.scale)
        load_diagrams(stack, args.diagrams)
        figures["object_bytes"] = load_objects(stack, args.objects)
        figures["load_seconds"] = round(time.monotonic() - t, 1)
        print(f"loaded in {figures['load_seconds']} s", flush=True)
        t = time.monotonic()
        taken = take_backups(stack, secrets.token_hex(2))
        figures["backup_seconds"] = round(time.monotonic() - t, 1)
        figures["backup_bytes"] = taken["database"].size_bytes + sum(
            e.size_bytes for e in taken["buckets"].values())
        print(f"backed up in {figures['backup_seconds']} s", flush=True)

        for scenario in (("complete", "machine") if args.scenario == "both"
                         else (args.scenario,)):
            if scenario == "machine" and args.scenario == "both":
                t = time.monotonic()  # fresh backups on the timeline the first recovery made
                take_backups(stack, secrets.token_hex(2))
                print(f"backed up again in {time.monotonic() - t:.1f} s", flush=True)
            result = fail_and_recover(stack, scenario, args)
            if result is None:
                return 1
            figures[scenario] = result
        if args.scenario == "both":
            ratio = figures["machine"]["rto_seconds"] / figures["complete"]["rto_seconds"]
            figures["machine_over_complete"] = round(ratio, 2)
            print(f"\nRTO machine / complete: {ratio:.2f}")
        out = Path(__file__).parent / "out"
        out.mkdir(exist_ok=True)
        (out / "dr_rto.json").write_text(json.dumps(figures, indent=2))
    finally:
        if args.keep:
            print(f"kept {stack.settings.home_dir}")
        else:
            remove_sandbox(stack)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
