"""The off-site tier: WAL lag under write load, and the cost of encryption (not a test).

A stack of its own (temporary home, free ports) with a second SeaweedFS as the off-site store.

1. WAL lag: pgbench (``--scale``, rate-limited to ``--tps`` for ``--seconds``) writes steadily;
   every completed segment's lag is the time from its completion (the file losing ``.partial``,
   its mtime) to the shipper's status naming it shipped (polled every 0.1 s). Median and p99.
   Segments close when full or when they hold writes ``--switch`` seconds old.
2. Encryption overhead, alternating ``--repeat`` times so both sides see the same load:
   a database backup (``DatabaseBackupManager.create``, pgbench data plus JSON documents) and a
   bucket backup (``MinIOBucketBackupManager.create``, ``--objects`` objects), each with the
   off-site copy encrypted, with it plain, and with no off-site tier (the raw baseline); ratios
   encrypted / plain (target ≤ 1.10x) and encrypted / no off-site.

    .venv/bin/python bench/offsite.py [--scale 10] [--tps 300] [--seconds 60] [--switch 10]
        [--repeat 3] [--objects 1000] [--only wal|overhead]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from autograph.config import Settings
from autograph.dr.buckets.manager import MinIOBucketBackupManager
from autograph.dr.offsite.shipper import read_status
from autograph.dr.offsite.wal import completed
from autograph.dr.postgres import DatabaseBackupManager
from autograph.dr.postgres.walstream import cluster_wal_dir
from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack
from offsiteutil import OffsiteServer
from stackutil import make_home, remove_home, stack_settings


def pgbench(settings: Settings, password: str, *args: str) -> None:
    env = {**os.environ, "PGPASSWORD": password}
    subprocess.run([str(settings.pg_bin / "pgbench"), "-h", settings.host, "-p",
                    str(settings.pg_port), "-U", settings.pg_user, *args, settings.pg_database],
                   env=env, check=True, capture_output=True)


def wal_lag(stack: Stack, tps: int, seconds: int) -> list[float]:
    """Per completed segment: seconds from completion to off-site."""
    folder = cluster_wal_dir(stack.settings, stack.creds)
    before = {p.name for p in completed(folder)}
    load = subprocess.Popen(
        [str(stack.settings.pg_bin / "pgbench"), "-h", stack.settings.host, "-p",
         str(stack.settings.pg_port), "-U", stack.settings.pg_user, "-c", "2", "-R", str(tps),
         "-T", str(seconds), "-n", stack.settings.pg_database],
        env={**os.environ, "PGPASSWORD": stack.creds.pg_password},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done: dict[str, float] = {}
    finished: dict[str, float] = {}
    deadline = time.monotonic() + seconds + 30
    while time.monotonic() < deadline:
        now = time.time()
        for path in completed(folder):
            if path.name not in before and path.name not in finished:
                finished[path.name] = path.stat().st_mtime
        status = read_status(stack.settings)
        mark = next((f.watermark for f in status.wal if f.folder == folder.name),
                    None) if status else None
        for name in finished:
            if name not in done and mark is not None and name <= mark:
                done[name] = now
        if load.poll() is not None and len(done) == len(finished):
            break
        time.sleep(0.1)
    _, errors = load.communicate()
    if load.returncode:
        print(f"pgbench failed: {errors.decode()[-300:]}")
    return [done[n] - finished[n] for n in sorted(done)]


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process's threads and its children, e.g. pg_dump)."""
    def cpu() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    began, began_cpu = time.perf_counter(), cpu()
    run()
    return time.perf_counter() - began, cpu() - began_cpu


def spread(values: list[float]) -> str:
    return (f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f}, "
            f"{len(values)} pairs)")


def overhead(stack: Stack, repeat: int, objects: int) -> None:
    """Encrypted vs plain vs no off-site, for a database and a bucket backup."""
    client = app_client(stack.settings, stack.creds)
    body = os.urandom(12_000) + b"{" + b'"n": 1, ' * 1000 + b"}"
    for i in range(objects):
        client.put_object(Bucket="uploads", Key=f"bench/{i:05d}.json", Body=body)
    variants = {
        "encrypted": stack.settings,
        "plain": stack.settings.model_copy(update={"offsite_encryption": False}),
        "no off-site": stack.settings.model_copy(update={"offsite_s3_endpoint": None}),
    }
    for what in ("database", "bucket"):
        wall: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(repeat):
            for name, settings in variants.items():
                tag = f"{what[:2]}_{name.replace(' ', '')[:5]}_{round_}"
                if what == "database":
                    manager = DatabaseBackupManager(settings, stack.creds)
                    seconds = timed(partial(manager.create, tag, verify=False))
                else:
                    buckets = MinIOBucketBackupManager(settings, stack.creds)
                    seconds = timed(partial(buckets.create, "uploads", tag, verify=False))
                wall[name].append(seconds[0])
                cpu[name].append(seconds[1])
        print(f"{what} backup ({repeat} alternating rounds, load {os.getloadavg()[0]:.1f}), "
              "median seconds wall / CPU (this process + its children):")
        for name in variants:
            print(f"  {name:<12} {statistics.median(wall[name]):7.2f} / "
                  f"{statistics.median(cpu[name]):6.2f}  wall runs "
                  f"{[round(v, 2) for v in wall[name]]}")
        for other in ("plain", "no off-site"):
            pairs_wall = [e / o for e, o in zip(wall["encrypted"], wall[other], strict=True)]
            pairs_cpu = [e / o for e, o in zip(cpu["encrypted"], cpu[other], strict=True)]
            print(f"  encrypted / {other}: wall {spread(pairs_wall)}, CPU {spread(pairs_cpu)}"
                  + (" (target <= 1.10x)" if other == "plain" else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--tps", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--only", choices=("wal", "overhead"), default=None)
    parser.add_argument("--switch", type=int, default=10,
                        help="AUTOGRAPH_WAL_SWITCH_SECONDS for the run (default 60 in use)")
    args = parser.parse_args()
    home = make_home("autograph-bench-offsite-")
    server = OffsiteServer(home / "offsite")
    (home / "offsite").mkdir()
    server.start()
    stack = Stack(stack_settings(home / "stack", wal_switch_seconds=args.switch,
                                 **server.overrides()))
    try:
        stack.up()
        pgbench(stack.settings, stack.creds.pg_password, "-i", "-q", "-s", str(args.scale))
        lags = [] if args.only == "overhead" else sorted(wal_lag(stack, args.tps, args.seconds))
        if lags:
            p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
            print(f"WAL off-site lag under pgbench -R {args.tps} for {args.seconds} s: "
                  f"{len(lags)} segments, median {statistics.median(lags):.2f} s, "
                  f"p99 {p99:.2f} s, max {lags[-1]:.2f} s")
        elif args.only != "overhead":
            print("WAL off-site lag: no segment completed during the load")
        if args.only != "wal":
            overhead(stack, args.repeat, args.objects)
    finally:
        stack.down()
        server.kill()
        remove_home(home)


if __name__ == "__main__":
    main()
