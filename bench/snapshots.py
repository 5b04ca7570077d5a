"""Incremental bucket snapshots against the full archive backup and rclone, in one run.

On a throw-away SeaweedFS (started here, as ``bench/bucket_backup.py`` does, whose seeding and
timing helpers this reuses) a bucket of ``--objects`` objects of 2 KB-200 KB (log-uniform) is:

- (b) snapshotted once (``autograph backup snapshots create``) and mirrored by ``rclone sync``
  to a folder; then ~1% of the objects are overwritten with new bytes, a few added, a few
  deleted, and on that state:
- (a) archived in full (``autograph backup objects create``: the cost of each daily backup);
- (c) snapshotted again (only the changed objects are fetched);
- (e) ``rclone sync``-ed to the same folder again (the incremental peer, default flags);
- (d) snapshotted a third time with nothing changed;
- (f) restored into empty buckets: the latest snapshot (``snapshots restore``) against the
  archive (``objects restore``); both results are compared key by key with the source.

Every command is a child process: wall time, its CPU, the S3 server's CPU meanwhile, peak RSS,
and the bytes it added on local disk (archive file, snapshot blobs and index, rclone folder;
the S3 tier's copies are not counted). "CLI start-up" is ``autograph backup --help``: the fixed
cost in every ``autograph`` row. Single runs (no medians): on a shared machine, read the
ratios as rough.

Then ``--pairs`` (3) rounds, the order alternating: a full archive; and a first snapshot into
an emptied snapshot store (both tiers cleared, untimed), ~1% of the objects changed (untimed)
and an incremental snapshot. The ratios of each round's snapshots to its archive are printed as
median (min-max) with the load average.

    nice -n 10 python bench/snapshots.py [--objects 5000] [--pairs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bucket_backup import SOURCE, Run, seed, timed  # also puts tests/ on sys.path

from autograph.s3.bulk import S3Client, S3Endpoint
from autograph.stack.lifecycle import Stack
from stackutil import make_home, remove_home, settings_env, stack_settings

MB = 1e6


def disk_bytes(root: Path, skip: Path | None = None) -> int:
    """Bytes of the regular files under ``root`` (not under ``skip``)."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        if skip is not None and Path(folder).is_relative_to(skip):
            continue
        total += sum(os.lstat(os.path.join(folder, f)).st_size for f in files)
    return total


def change(client: S3Client, objects: int, seed: int = 7) -> dict[str, int]:
    """Overwrite ~1% of the objects with new random bytes, add and delete a few."""
    rnd = random.Random(seed)
    keys = sorted(o.key for o in client.list_objects(SOURCE))
    picked = rnd.sample(keys, max(1, objects // 100) + max(1, objects // 500))
    overwrite, delete = picked[: max(1, objects // 100)], picked[max(1, objects // 100):]
    for key in overwrite:
        client.put_object(SOURCE, key, os.urandom(int(2000 * 100 ** rnd.random())))
    for key in delete:
        client.delete_object(SOURCE, key)
    added = max(1, objects // 500)
    for i in range(added):
        client.put_object(SOURCE, f"uploads/new-{seed}-{i:04d}.bin", os.urandom(50_000))
    return {"overwritten": len(overwrite), "added": added, "deleted": len(delete)}


def state(client: S3Client, bucket: str) -> dict[str, tuple[int, str]]:
    return {o.key: (o.size, o.etag) for o in client.list_objects(bucket)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--pairs", type=int, default=3)
    options = parser.parse_args()

    home = make_home("autograph-bench-")
    # SOURCE must be an application bucket: snapshots are taken of those only.
    stack = Stack(stack_settings(home, app_buckets=("diagrams", "exports", "uploads", SOURCE)))
    work = Path(tempfile.mkdtemp(prefix="snapshot-bench-", dir=home))
    try:
        stack.up(only=["s3"])
        settings, creds = stack.settings, stack.creds
        client = S3Client(S3Endpoint.application(settings, creds))
        server = int(stack.supervisor.all_info()["s3"].pid)
        print(f"seeding {options.objects} objects ...", flush=True)
        total = seed(client, options.objects, 0)
        print(f"bucket: {options.objects} objects, {total / MB:.1f} MB", flush=True)
        env = {**os.environ, **settings_env(settings)}
        rclone_env = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"} | {
            "RCLONE_CONFIG_S_TYPE": "s3", "RCLONE_CONFIG_S_PROVIDER": "Other",
            "RCLONE_CONFIG_S_ACCESS_KEY_ID": creds.s3_access_key,
            "RCLONE_CONFIG_S_SECRET_ACCESS_KEY": creds.s3_secret_key,
            "RCLONE_CONFIG_S_ENDPOINT": settings.s3_url, "RCLONE_CONFIG_S_REGION": "us-east-1"}
        backup = [sys.executable, "-m", "autograph.cli.main", "backup"]
        snaps = settings.backups_dir / "snapshots"
        mirror = work / "rclone"
        rows: dict[str, tuple[Run, int | None]] = {}

        def measure(key: str, label: str, args: list[str], environment: dict[str, str],
                    where: Path | None = None, skip: Path | None = None) -> None:
            """Time ``args``; with ``where``, also the bytes it added under that folder."""
            before = disk_bytes(where, skip) if where and where.exists() else 0
            run = timed(label, args, environment, server)
            rows[key] = (run, disk_bytes(where, skip) - before if where else None)

        def cli_json(*args: str) -> Any:
            done = subprocess.run([*backup, *args, "--json"], env=env, capture_output=True,
                                  text=True, check=True)
            return json.loads(done.stdout)

        measure("0", "    CLI start-up (backup --help)", [*backup, "--help"], env)
        measure("b", "(b) snapshot #1 (full)", [*backup, "snapshots", "create", SOURCE,
                                                "--json"], env, snaps)
        measure("e0", "    rclone sync (first, full)", [
            "rclone", "sync", f"s:{SOURCE}", str(mirror)], rclone_env, work)
        changed = change(client, options.objects)
        source = state(client, SOURCE)
        print(f"changed: {changed}; bucket now {len(source)} objects, "
              f"{sum(s for s, _ in source.values()) / MB:.1f} MB", flush=True)
        measure("a", "(a) full archive (objects create)", [
            *backup, "objects", "create", SOURCE, "--name", "bench_full", "--json"], env,
            settings.backups_dir, skip=snaps)
        measure("c", "(c) snapshot #2 (1% changed)", [
            *backup, "snapshots", "create", SOURCE, "--json"], env, snaps)
        measure("e", "(e) rclone sync (1% changed)", [
            "rclone", "sync", f"s:{SOURCE}", str(mirror)], rclone_env, work)
        measure("d", "(d) snapshot #3 (unchanged)", [
            *backup, "snapshots", "create", SOURCE, "--json"], env, snaps)
        listing = cli_json("snapshots", "list", "--bucket", SOURCE)["snapshots"]
        latest = listing[0]["name"]
        shown = [cli_json("snapshots", "show", row["name"]) for row in reversed(listing)]
        measure("v", "    snapshot verify (latest)", [
            *backup, "snapshots", "verify", latest, "--json"], env)
        measure("fs", "(f) snapshot restore -> empty bucket", [
            *backup, "snapshots", "restore", latest, "--target-bucket", "bench-snap",
            "--json"], env)
        measure("fa", "(f) archive restore -> empty bucket", [
            *backup, "objects", "restore", "bench_full", "--target-bucket", "bench-arch",
            "--json"], env)
        for bucket in ("bench-snap", "bench-arch"):
            got = state(client, bucket)
            same = got == source
            print(f"  {bucket}: {len(got)} objects, "
                  f"{'identical to the source' if same else 'DIFFERS from the source'}")
        report(rows, shown, total)
        if options.pairs:
            backups = S3Client(S3Endpoint.backups(settings, creds))

            def archive(n: int) -> Run:
                return timed(f"full archive #{n}", [*backup, "objects", "create", SOURCE,
                                                    "--name", f"pair_{n}", "--json"], env, server)

            def snapshots(n: int) -> tuple[Run, Run]:
                """A first snapshot into an emptied store, then ~1% changed, then the next."""
                shutil.rmtree(snaps, ignore_errors=True)
                for item in list(backups.list_objects(settings.backup_bucket_objects,
                                                      "snapshots/")):
                    backups.delete_object(settings.backup_bucket_objects, item.key)
                made = timed(f"first snapshot #{n}", [*backup, "snapshots", "create", SOURCE,
                                                      "--json"], env, server)
                change(client, options.objects, seed=100 + n)
                return made, timed(f"snapshot after 1% changed #{n}", [
                    *backup, "snapshots", "create", SOURCE, "--json"], env, server)

            paired(archive, snapshots, options.pairs)
    finally:
        stack.down()
        remove_home(home)


def paired(archive: Callable[[int], Run], snapshots: Callable[[int], tuple[Run, Run]],
           pairs: int) -> None:
    """Per round a full archive and a first + an incremental snapshot, in turn (the archive
    first in even rounds, last in odd ones); print the ratios to the round's archive, median
    (min-max), and the load average."""
    firsts, increments, loads = [], [], [os.getloadavg()[0]]
    for n in range(pairs):
        if n % 2 == 0:
            base = archive(n)
            first, incremental = snapshots(n)
        else:
            first, incremental = snapshots(n)
            base = archive(n)
        loads.append(os.getloadavg()[0])
        firsts.append(first.wall / base.wall)
        increments.append(incremental.wall / base.wall)
    print(f"\npaired, {pairs} rounds, load average {min(loads):.1f}-{max(loads):.1f}:")
    for label, ratios in (("first snapshot / full archive (target <= 1.5)", firsts),
                          ("snapshot after 1% change / full archive (target <= 0.3)",
                           increments)):
        print(f"  {label:58s} {statistics.median(ratios):5.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f})")


def report(rows: dict[str, tuple[Run, int | None]], shown: list[dict[str, Any]],
           seeded: int) -> None:
    """The table and the ratios."""
    print(f"\n{'':42s} {'wall s':>7s} {'CPU s':>7s} {'S3 CPU s':>8s} {'RSS MB':>7s} "
          f"{'+disk MB':>9s}")
    for run, stored in rows.values():
        print(f"{run.label:42s} {run.wall:7.2f} {run.cpu:7.2f} {run.server_cpu:8.2f} "
              f"{run.peak_rss_mb:7.0f} {'-' if stored is None else f'{stored / MB:.2f}':>9s}")
    print("\nsnapshots (show): " + "; ".join(
        f"{s['name']}: {s['objects']} objects, {s['new_blobs']} new blobs, "
        f"{s['new_bytes'] / MB:.2f} MB new" for s in shown))
    wall = {k: run.wall for k, (run, _) in rows.items()}
    cpu = {k: run.cpu for k, (run, _) in rows.items()}
    stored = {k: b or 0 for k, (_, b) in rows.items()}
    print("\nratios")
    lines = {
        "(c) incremental snapshot / (a) full archive, wall": wall["c"] / wall["a"],
        "(c) incremental snapshot / (a) full archive, CPU": cpu["c"] / cpu["a"],
        "(c) incremental snapshot / (e) rclone sync, wall": wall["c"] / wall["e"],
        "(c) incremental snapshot / (e) rclone sync, CPU": cpu["c"] / cpu["e"],
        "(c) / (a), wall, CLI start-up subtracted from both": (wall["c"] - wall["0"]) / (
            wall["a"] - wall["0"]),
        "(d) unchanged snapshot / (a) full archive, wall": wall["d"] / wall["a"],
        "(b) first (full) snapshot / (a) full archive, wall": wall["b"] / wall["a"],
        "snapshot restore / archive restore, wall": wall["fs"] / wall["fa"],
        "bytes added by (c) / full archive size": stored["c"] / stored["a"],
    }
    for label, value in lines.items():
        print(f"  {label:58s} {value:6.3f}")
    print(f"  (d) unchanged snapshot wall time {wall['d']:.2f} s; bytes added by (c) "
          f"{stored['c'] / MB:.2f} MB vs archive {stored['a'] / MB:.2f} MB (bucket seeded "
          f"{seeded / MB:.1f} MB)")


if __name__ == "__main__":
    main()
