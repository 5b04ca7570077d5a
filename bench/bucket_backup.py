"""Bucket backup and restore: ours against the obvious and the fast peers, in one run.

On a throw-away SeaweedFS (the stack's own S3 server, started here) a bucket of ``--objects``
objects of 2 KB-200 KB (log-uniform; even ones compressible JSON, odd ones random bytes) plus
one ``--big-mb`` object of random bytes is backed up by:

- (a) boto3, 16 threads, into Python's ``tarfile`` "w:gz" (the obvious implementation);
- (c) ``aws s3 sync`` to a folder, then ``tar czf``;
- (d) ``rclone sync`` to a folder (no archive at all);
- ours: ``autograph backup objects create`` (the CLI: fetch, archive, full verification), once
  with ``--no-upload`` (a verified local archive: what the peers produce) and once as shipped
  (plus the copy into the ``minio-backups`` bucket of the same server);

and restored by ``rclone copy`` of (d)'s folder into an empty bucket and by ``autograph backup
objects restore`` into another. Each command runs as a child process: wall time, its CPU, the S3
server's CPU meanwhile, and its peak RSS. Prints a table and the ratios the issue targets.

    python bench/bucket_backup.py [--objects 5000] [--big-mb 1024] [--rounds 3]
                                  [--skip-slow-peers] [--skip-restore]

The machine is shared and noisy: ours and rclone run ``--rounds`` times, alternating which goes
first, and the ratios are of medians; (a) runs ``--peer-rounds`` times, (c) once.
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
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from autograph.s3.bulk import S3Client, S3Endpoint  # noqa: E402
from autograph.stack.lifecycle import Stack  # noqa: E402
from stackutil import make_home, remove_home, settings_env, stack_settings  # noqa: E402

SOURCE = "bench-src"
MiB = 1 << 20


@dataclass
class Run:
    """One timed child process."""

    label: str
    wall: float
    cpu: float
    server_cpu: float
    peak_rss_mb: float


def server_ticks(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(label: str, args: list[str], env: dict[str, str], server: int) -> Run:
    """Run ``args`` to completion under GNU time (whose own footprint is tiny, so the peak RSS
    is the command's); raise if it fails."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        before = server_ticks(server)
        start = time.monotonic()
        done = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", stats.name, *args],
                              env=env, capture_output=True, text=True)
        wall = time.monotonic() - start
        used = server_ticks(server) - before
        if done.returncode != 0:
            raise SystemExit(f"{label} failed: {done.stderr[-2000:]}{done.stdout[-500:]}")
        rss_kb, user, system = stats.read().split()[-3:]
    run = Run(label, wall, float(user) + float(system), used, int(rss_kb) / 1024)
    print(f"  {label:42s} {run.wall:7.1f} s  cpu {run.cpu:6.1f} s  S3 server cpu "
          f"{run.server_cpu:6.1f} s  peak RSS {run.peak_rss_mb:6.0f} MB", flush=True)
    return run


def seed(client: S3Client, objects: int, big_mb: int) -> int:
    """Fill the source bucket (deterministic); return its total size."""
    client.create_bucket(SOURCE)
    rnd = random.Random(2024)
    sizes = [int(2000 * 100 ** rnd.random()) for _ in range(objects)]
    row = b'{"id": 1, "type": "rect", "x": 12.5, "y": 40.25, "label": "node", "edges": [2, 3]}'

    def put(i: int) -> None:
        size = sizes[i]
        if i % 2:
            body, key, ctype = os.urandom(size), f"uploads/{i:05d}.bin", "image/png"
        else:
            body = (b"[" + b",\n".join([row] * (size // len(row) + 1)))[:size]
            key, ctype = f"diagrams/{i:05d}.json", "application/json"
        client.put_object(SOURCE, key, body, content_type=ctype, metadata={"owner": f"u{i % 9}"})

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(objects)))
    if big_mb:
        upload = client.create_multipart(SOURCE, "media/big.bin", content_type="video/mp4")
        parts = -(-big_mb * MiB // (16 * MiB))
        with ThreadPoolExecutor(4) as pool:
            etags = list(pool.map(lambda n: client.upload_part(
                SOURCE, "media/big.bin", upload, n, os.urandom(min(16 * MiB, big_mb * MiB - (
                    n - 1) * 16 * MiB))), range(1, parts + 1)))
        client.complete_multipart(SOURCE, "media/big.bin", upload, etags)
    return sum(sizes) + big_mb * MiB


def boto3_tarfile(endpoint: str, out: str) -> None:
    """Peer (a): boto3 with 16 threads into tarfile "w:gz", objects in key order."""
    import io
    import tarfile

    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      config=Config(max_pool_connections=32, s3={"addressing_style": "path"}))
    keys = [(o["Key"], o["Size"]) for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=SOURCE) for o in page.get("Contents", [])]

    def fetch(item: tuple[str, int]) -> tuple[str, int, object]:
        name, size = item
        if size > 64 * MiB:
            spool = tempfile.TemporaryFile(dir=os.path.dirname(out))  # noqa: SIM115 - tar reads it
            s3.download_fileobj(SOURCE, name, spool)
            spool.seek(0)
            return name, size, spool
        return name, size, io.BytesIO(s3.get_object(Bucket=SOURCE, Key=name)["Body"].read())

    with tarfile.open(out, "w:gz") as tar, ThreadPoolExecutor(16) as pool:
        for name, size, body in pool.map(fetch, keys):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, body)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="runs of ours and rclone (median)")
    parser.add_argument("--peer-rounds", type=int, default=2, help="runs of (a) (median)")
    parser.add_argument("--skip-slow-peers", action="store_true", help="skip (a) and (c)")
    parser.add_argument("--skip-restore", action="store_true", help="time the backups only")
    parser.add_argument("--peer-boto3", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.peer_boto3:
        boto3_tarfile(*options.peer_boto3)
        return

    home = make_home("autograph-bench-")
    stack = Stack(stack_settings(home))
    work = Path(tempfile.mkdtemp(prefix="bucket-bench-", dir=home))
    try:
        stack.up(only=["s3"])
        settings, creds = stack.settings, stack.creds
        client = S3Client(S3Endpoint.application(settings, creds))
        server = int(stack.supervisor.all_info()["s3"].pid)
        print(f"seeding {options.objects} objects + {options.big_mb} MiB ...", flush=True)
        total = seed(client, options.objects, options.big_mb)
        print(f"bucket: {options.objects + bool(options.big_mb)} objects, {total / 1e6:.0f} MB")
        env = {**os.environ, **settings_env(settings)}
        rclone_env = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"} | {
            "RCLONE_CONFIG_S_TYPE": "s3", "RCLONE_CONFIG_S_PROVIDER": "Other",
            "RCLONE_CONFIG_S_ACCESS_KEY_ID": creds.s3_access_key,
            "RCLONE_CONFIG_S_SECRET_ACCESS_KEY": creds.s3_secret_key,
            "RCLONE_CONFIG_S_ENDPOINT": settings.s3_url, "RCLONE_CONFIG_S_REGION": "us-east-1"}
        aws_env = env | {"AWS_ACCESS_KEY_ID": creds.s3_access_key,
                         "AWS_SECRET_ACCESS_KEY": creds.s3_secret_key,
                         "AWS_DEFAULT_REGION": "us-east-1"}
        cli = [sys.executable, "-m", "autograph.cli.main", "backup", "objects"]
        aws = shutil.which("aws") or "/root/.pyenv/shims/aws"
        runs: dict[str, list[Run]] = {}
        loads: list[float] = [os.getloadavg()[0]]

        def measure(key: str, label: str, args: list[str], environment: dict[str, str]) -> Run:
            run = timed(label, args, environment, server)
            runs.setdefault(key, []).append(run)
            loads.append(os.getloadavg()[0])
            return run

        def purge(bucket: str) -> None:
            subprocess.run(["rclone", "purge", f"s:{bucket}"], env=rclone_env, check=False,
                           capture_output=True)

        print("backup", flush=True)
        for r in range(options.rounds):
            shutil.rmtree(work / "rclone", ignore_errors=True)
            ours_first = r % 2 == 1
            if not ours_first:
                measure("d", "(d) rclone sync to a folder",
                        ["rclone", "sync", f"s:{SOURCE}", str(work / "rclone")], rclone_env)
            measure("local", "ours: create --no-upload (verified)", [
                *cli, "create", SOURCE, "--name", f"bench_local_{r}", "--no-upload", "--json"],
                env)
            measure("ours", "ours: create (+ copy to minio-backups)", [
                *cli, "create", SOURCE, "--name", f"bench_full_{r}", "--json"], env)
            if ours_first:
                measure("d", "(d) rclone sync to a folder",
                        ["rclone", "sync", f"s:{SOURCE}", str(work / "rclone")], rclone_env)
            subprocess.run([*cli, "delete", f"bench_full_{r}", "--yes"], env=env, check=True,
                           capture_output=True)
            if r:
                subprocess.run([*cli, "delete", f"bench_local_{r}", "--yes"], env=env,
                               check=True, capture_output=True)
        if not options.skip_slow_peers:
            for _ in range(options.peer_rounds):
                measure("a", "(a) boto3 x16 + tarfile w:gz", [
                    sys.executable, __file__, "--peer-boto3", settings.s3_url,
                    str(work / "a.tar.gz")], aws_env)
                (work / "a.tar.gz").unlink()
            synced = timed("(c) aws s3 sync to a folder", [
                aws, "s3", "sync", f"s3://{SOURCE}", str(work / "aws"), "--endpoint-url",
                settings.s3_url, "--only-show-errors"], aws_env, server)
            tar = timed("    + tar czf", ["tar", "czf", str(work / "c.tar.gz"), "-C",
                                          str(work / "aws"), "."], env, server)
            runs["c"] = [Run("(c)", synced.wall + tar.wall, synced.cpu + tar.cpu,
                             synced.server_cpu + tar.server_cpu,
                             max(synced.peak_rss_mb, tar.peak_rss_mb))]
            shutil.rmtree(work / "aws")
            (work / "c.tar.gz").unlink()
        print("restore", flush=True)
        source = {o.key: o.size for o in client.list_objects(SOURCE)}
        for r in range(0 if options.skip_restore else options.rounds):
            client.create_bucket(f"bench-rclone-{r}")
            ours_first = r % 2 == 1
            if not ours_first:
                measure("rclone_copy", "rclone copy folder -> bucket", [
                    "rclone", "copy", str(work / "rclone"), f"s:bench-rclone-{r}"], rclone_env)
            measure("restore", "ours: restore -> empty bucket", [
                *cli, "restore", "bench_local_0", "--target-bucket", f"bench-ours-{r}",
                "--json"], env)
            if ours_first:
                measure("rclone_copy", "rclone copy folder -> bucket", [
                    "rclone", "copy", str(work / "rclone"), f"s:bench-rclone-{r}"], rclone_env)
            restored = {o.key: o.size for o in client.list_objects(f"bench-ours-{r}")}
            assert restored == source, "the restored bucket differs from the source"
            purge(f"bench-ours-{r}")
            purge(f"bench-rclone-{r}")
        report(runs, loads)
    finally:
        stack.down()
        remove_home(home)


def paired(runs: dict[str, list[Run]], ours: str, peer: str) -> str:
    """Round by round ratios ours/peer: median (min-max)."""
    ratios = [a.wall / b.wall for a, b in zip(runs[ours], runs[peer], strict=False)]
    return (f"{statistics.median(ratios):5.2f}x ({min(ratios):.2f}-{max(ratios):.2f}), "
            f"{len(ratios)} pairs")


def report(runs: dict[str, list[Run]], loads: list[float]) -> None:
    """Medians over the rounds, the paired ratios the issue sets targets for (the shipped
    command first), and the load average during the run."""
    wall = {key: statistics.median(r.wall for r in rs) for key, rs in runs.items()}
    cpu = {key: statistics.median(r.cpu + r.server_cpu for r in rs) for key, rs in runs.items()}
    print("medians (wall seconds; CPU = the command's + the S3 server's)")
    for key, value in wall.items():
        print(f"  {runs[key][0].label:42s} {value:7.1f} s  CPU {cpu[key]:6.1f} s  "
              f"({len(runs[key])} run(s))")
    print(f"load average (1 min) during the run: {min(loads):.1f}-{max(loads):.1f}")
    print("paired ratios, wall, median (min-max)")
    print(f"  {'ours as shipped (+ S3 copy) / rclone sync (target <= 1.0)':62s} "
          f"{paired(runs, 'ours', 'd')}")
    print(f"  {'ours --no-upload (verified local archive) / rclone sync':62s} "
          f"{paired(runs, 'local', 'd')}")
    if "restore" in runs:
        print(f"  {'ours restore / rclone copy (target <= 1.5)':62s} "
              f"{paired(runs, 'restore', 'rclone_copy')}")
    lines = {"ours (+ S3 copy) / rclone sync, CPU": cpu["ours"] / cpu["d"]}
    if "a" in wall:
        lines["(a) boto3+tarfile / ours as shipped (target >= 3)"] = wall["a"] / wall["ours"]
        lines["(a) boto3+tarfile / ours local"] = wall["a"] / wall["local"]
        lines["(c) aws sync+tar / ours as shipped"] = wall["c"] / wall["ours"]
    print("ratios of medians")
    for label, value in lines.items():
        print(f"  {label:62s} {value:5.2f}")
    peak = max(r.peak_rss_mb for k in ("local", "ours", "restore") for r in runs.get(k, []))
    print(f"  peak RSS of ours (create, restore; target < 300 MB)      {peak:5.0f} MB")
    print(json.dumps({k: [vars(r) for r in rs] for k, rs in runs.items()}))


if __name__ == "__main__":
    main()
