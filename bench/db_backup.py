"""Database backup and restore: ours against raw pg_dump / pg_restore, in one run (not a test).

A stack of its own (temporary home, free ports) gets pgbench at ``--scale`` (50) plus a table of
``--docs`` (50,000) JSON documents of about 2 KB (pgbench rows compress ~27x, the documents do
not). Then, each ``--repeat`` times, alternating so caches treat both sides alike:

- raw ``pg_dump -Fc -f FILE``;
- ours, ``DatabaseBackupManager.create`` in process: with verification and the S3 copy (the
  default), and without them; and the ``autograph backup db create`` command (adds the CLI's
  interpreter start-up);
- raw ``pg_restore -j 2`` into an empty database (created beforehand, not timed);
- ours, ``DatabaseBackupManager.restore`` in process (checksum, new database, ``pg_restore -j 2``,
  row counts, swap) and the ``autograph backup db restore`` command.

Before every timed run: CHECKPOINT and sync, so write-back from one run does not land in the next.
Besides wall time (median and minimum), each run's CPU seconds are measured over every process
involved (this one and its children, the PostgreSQL backends, the S3 server): on a shared
machine wall time swings by 2x with other load, CPU cost does not.

Prints, per variant, the median and minimum wall time, the median of the paired ratios (each run
against the raw run just before it, under the same load) and the median CPU seconds, each as a
ratio to the raw tool (targets: create with verification and S3 ≤ 1.15x pg_dump, restore ≤ 1.15x
pg_restore -j 2).

    .venv/bin/python bench/db_backup.py [--scale 50] [--docs 50000] [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from autograph import commands
from autograph.config import Settings, load_settings
from autograph.dr.postgres import DatabaseBackupManager
from autograph.dr.postgres.server import PgServer
from autograph.stack.components import _service_environment
from autograph.stack.health import port_free
from autograph.stack.lifecycle import Stack

DOCS_SQL = """
CREATE TABLE documents (id bigint PRIMARY KEY, doc jsonb NOT NULL);
INSERT INTO documents
SELECT g, jsonb_build_object(
  'id', g, 'title', 'Diagram ' || g, 'owner', 'user' || (g % 997) || '@example.com',
  'nodes', (SELECT jsonb_agg(jsonb_build_object(
      'id', i, 'label', md5(g::text || '-' || i),
      'kind', (ARRAY['rect', 'ellipse', 'text'])[1 + i % 3],
      'x', (random() * 4000)::int, 'y', (random() * 3000)::int))
    FROM generate_series(1, 18) i))
FROM generate_series(1, %(docs)s) g;
"""


def free_block(size: int) -> int:
    """The first of ``size`` consecutive free local ports."""
    while True:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        start = probe.getsockname()[1]
        probe.close()
        if start + size < 65000 and all(port_free("127.0.0.1", p)
                                        for p in range(start, start + size)):
            return start


def sandbox_settings(home: Path) -> Settings:
    ports = {name: free_block(1) for name in ("pg_port", "redis_port")}
    return load_settings(home=home, services=(), scheduler_enabled=False,
                         s3_port=free_block(8), **ports)


def load_data(stack: Stack, manager: DatabaseBackupManager, scale: int, docs: int) -> None:
    settings = stack.settings
    commands.run([str(settings.pg_bin / "pgbench"), "-i", "-q", "-s", str(scale),
                  *manager.server.tool_args(settings.pg_database)],
                 env=manager.server.tool_env(), what="pgbench -i", timeout=3600)
    with manager.server.connect(settings.pg_database) as conn:
        conn.execute(DOCS_SQL.replace("%(docs)s", str(docs)))
        conn.execute("VACUUM ANALYZE documents")
        conn.execute("CHECKPOINT")


def settle(server: PgServer) -> None:
    """Checkpoint and flush dirty pages, so one run's write-back does not land in the next."""
    with server.connect() as conn:
        conn.execute("CHECKPOINT")
    os.sync()


def _proc_cpu(pid: int, with_children: bool) -> float:
    """CPU seconds of a process (and of its reaped children) from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(f) for f in fields[11:15 if with_children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent by everything a run involves: this process and the programs it ran
    (pg_dump, pg_restore, the CLI), the PostgreSQL backends (reaped by the postmaster, so
    counted in its children's time) and the S3 server. Robust to other load on the machine,
    unlike wall time."""

    def __init__(self, stack: Stack) -> None:
        pid_file = stack.settings.data_dir / "postgres" / "postmaster.pid"
        self.postmaster = int(pid_file.read_text().split()[0])
        marker = str(stack.settings.data_dir / "s3")
        self.s3_pids = [int(p) for p in os.listdir("/proc") if p.isdigit()
                        and marker in _cmdline(int(p))]

    def read(self) -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
                + _proc_cpu(self.postmaster, True)
                + sum(_proc_cpu(pid, True) for pid in self.s3_pids))


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def timed(server: PgServer, meter: CpuMeter, action: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``action`` after settling the server."""
    settle(server)
    cpu, started = meter.read(), time.perf_counter()
    action()
    wall = time.perf_counter() - started
    time.sleep(0.2)  # let the postmaster reap the run's backends
    return wall, meter.read() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=50)
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the sandbox home")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="autograph-bench-db-"))
    os.chmod(home, 0o755)
    stack = Stack(sandbox_settings(home))
    try:
        stack.up()
        settings, creds = stack.settings, stack.creds
        manager = DatabaseBackupManager(settings, creds)
        server, live = manager.server, settings.pg_database
        t = time.perf_counter()
        load_data(stack, manager, args.scale, args.docs)
        with server.connect(live) as conn:
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        print(f"loaded pgbench scale {args.scale} + {args.docs} documents: "
              f"{size / 1e6:.0f} MB in {time.perf_counter() - t:.0f} s", flush=True)

        env = {**os.environ, **{k: v for k, v in _service_environment(settings).items()
                                if k.startswith("AUTOGRAPH_")}}
        cli = [sys.executable, "-m", "autograph.cli.main", "backup", "db"]
        raw_file = home / "raw.dump"
        pg_dump = [server.program("pg_dump"), "-Fc", "-f", str(raw_file),
                   *server.tool_args(live)]
        samples: dict[str, list[tuple[float, float]]] = {}
        names: list[str] = []
        meter = CpuMeter(stack)

        def record(label: str, run: tuple[float, float]) -> None:
            samples.setdefault(label, []).append(run)
            print(f"  {label:<32} wall {run[0]:6.2f} s  cpu {run[1]:6.2f} s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)

        def ours(tag: str, **options: bool) -> None:
            name = f"bench_{tag.replace('+', '_')}_{len(names)}"
            names.append(name)
            record(f"ours create {tag}",
                   timed(server, meter, lambda: manager.create(name, **options)))

        commands.run(pg_dump, env=server.tool_env(), timeout=3600)  # warm the caches
        for _round in range(args.repeat):
            record("raw pg_dump -Fc", timed(server, meter, lambda: commands.run(
                pg_dump, env=server.tool_env(), timeout=3600)))
            ours("verify+s3")
            ours("bare", verify=False, upload=False)
            names.append(f"bench_cli_{len(names)}")
            create_cli = [*cli, "create", "--name", names[-1]]
            record("ours CLI create (verify+s3)", timed(server, meter, lambda: subprocess.run(
                create_cli, env=env, check=True, capture_output=True)))  # noqa: B023
        dump_size = raw_file.stat().st_size
        ours_size = manager.get(names[0]).size_bytes

        restore_into = "bench_raw_restore"
        for _round in range(args.repeat):
            server.drop_database(restore_into)
            server.create_database(restore_into)
            record("raw pg_restore -j 2", timed(server, meter, lambda: commands.run(
                [server.program("pg_restore"), "-j", "2", *server.tool_args(restore_into),
                 str(raw_file)], env=server.tool_env(), timeout=3600)))
            record("ours restore", timed(server, meter, lambda: manager.restore(names[0], jobs=2)))
            for old in manager.previous_databases():
                server.drop_database(old)
            record("ours CLI restore", timed(server, meter, lambda: subprocess.run(
                [*cli, "restore", names[0], "--yes", "--jobs", "2"], env=env, check=True,
                capture_output=True)))
            for old in manager.previous_databases():
                server.drop_database(old)
        server.drop_database(restore_into)

        print(f"\ndump size: raw {dump_size / 1e6:.1f} MB, ours {ours_size / 1e6:.1f} MB; "
              f"{args.repeat} runs each, medians; ratios to the raw tool")
        print(f"{'':<32} {'wall':>7} {'ratio':>6} {'paired':>7} {'min wall':>9} {'ratio':>6} "
              f"{'cpu':>7} {'ratio':>6}")
        for label, runs in samples.items():
            base = samples["raw pg_restore -j 2" if "restore" in label else "raw pg_dump -Fc"]
            wall, cpu = (statistics.median(r[i] for r in runs) for i in (0, 1))
            low = min(r[0] for r in runs)
            base_wall, base_cpu = (statistics.median(r[i] for r in base) for i in (0, 1))
            base_low = min(r[0] for r in base)
            paired = statistics.median(r[0] / b[0] for r, b in zip(runs, base, strict=True))
            print(f"{label:<32} {wall:6.2f}s {wall / base_wall:5.2f}x {paired:6.2f}x "
                  f"{low:8.2f}s {low / base_low:5.2f}x {cpu:6.2f}s {cpu / base_cpu:5.2f}x")
        print("targets: ours create verify+s3 <= 1.15x raw pg_dump -Fc, "
              "ours restore <= 1.15x raw pg_restore -j 2")
    finally:
        stack.down()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
