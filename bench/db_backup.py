"""Database backup and restore as shipped against the raw tools, in one run (not a test).

A stack of its own (temporary home, free ports) gets pgbench at ``--scale`` (50) plus a table of
``--docs`` (50,000) JSON documents of about 2 KB (pgbench rows compress ~27x, the documents do
not). Then, ``--repeat`` times each, alternating (raw, shipped, raw, shipped…) so that the
machine's load treats both sides alike:

- raw ``pg_dump -Fc -f FILE`` against ``autograph backup db create`` (the command as a user runs
  it: a whole process with its start-up, the dump, row counts, verification and the S3 copy);
- raw ``createdb`` + ``pg_restore -j 2`` against ``autograph backup db restore NAME --yes
  --jobs 2`` (checksum, new database, pg_restore, row counts, swap).

Before every timed run: CHECKPOINT and sync, so write-back from one run does not land in the next.
Each run's wall time and CPU seconds over every process involved (the programs run, the
PostgreSQL backends, the S3 server) are printed with the load average; at the end the ratio of
each shipped run to the raw run just before it (same load), as median (min-max). On a shared
machine wall time swings with other load; the CPU ratio does much less.

    .venv/bin/python bench/db_backup.py [--scale 50] [--docs 50000] [--repeat 5] [--keep]
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
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the sandbox home")
    parser.add_argument("--only", choices=("create", "restore"),
                        help="time one operation (the other runs once, untimed, if needed)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="autograph-bench-db-"))
    os.chmod(home, 0o755)
    stack = Stack(sandbox_settings(home))
    try:
        stack.up()
        manager = DatabaseBackupManager(stack.settings, stack.creds)
        t = time.perf_counter()
        load_data(stack, manager, args.scale, args.docs)
        with manager.server.connect(stack.settings.pg_database) as conn:
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        print(f"loaded pgbench scale {args.scale} + {args.docs} documents: "
              f"{size / 1e6:.0f} MB in {time.perf_counter() - t:.0f} s", flush=True)
        pairs = compare(stack, manager, home, args.repeat, args.only)
        report(pairs)
    finally:
        stack.down()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return 0


Sample = tuple[float, float, float]  # wall s, cpu s, load average


def compare(stack: Stack, manager: DatabaseBackupManager, home: Path, repeat: int,
            only: str | None = None) -> dict[str, list[tuple[Sample, Sample]]]:
    """(raw, shipped) samples per operation, taken in turn."""
    settings, server = stack.settings, manager.server
    live = settings.pg_database
    env = {**os.environ, **{k: v for k, v in _service_environment(settings).items()
                            if k.startswith("AUTOGRAPH_")}}
    cli = [str(Path(sys.executable).parent / "autograph"), "backup", "db"]
    raw_file = home / "raw.dump"
    meter = CpuMeter(stack)
    operations = (only,) if only else ("create", "restore")
    pairs: dict[str, list[tuple[Sample, Sample]]] = {op: [] for op in operations}

    def run(label: str, action: Callable[[], object]) -> Sample:
        wall, cpu = timed(server, meter, action)
        load = os.getloadavg()[0]
        print(f"  {label:<40} wall {wall:6.2f} s  cpu {cpu:6.2f} s  (load {load:.1f})",
              flush=True)
        return wall, cpu, load

    def tool(*argv: str) -> None:
        commands.run(list(argv), env=server.tool_env(), timeout=3600)

    def shipped(*argv: str) -> None:
        subprocess.run([*cli, *argv], env=env, check=True, capture_output=True)

    pg_dump = [server.program("pg_dump"), "-Fc", "-f", str(raw_file), *server.tool_args(live)]
    tool(*pg_dump)  # warm the caches (and the raw dump the restores load)
    if "create" not in operations:
        shipped("create", "--name", "bench_0")
    for n in range(repeat if "create" in operations else 0):
        raw = run("raw pg_dump -Fc", lambda: tool(*pg_dump))
        name = f"bench_{n}"
        ours = run("autograph backup db create", lambda name=name: shipped(  # type: ignore[misc]
            "create", "--name", name))
        pairs["create"].append((raw, ours))
    if "restore" not in operations:
        return pairs
    print(f"  dump size: raw {raw_file.stat().st_size / 1e6:.1f} MB, "
          f"ours {manager.get('bench_0').size_bytes / 1e6:.1f} MB", flush=True)

    into = "bench_raw_restore"

    def raw_restore() -> None:
        tool(server.program("createdb"), *server.tool_args(into)[:-2], into)
        tool(server.program("pg_restore"), "-j", "2", *server.tool_args(into), str(raw_file))

    for _n in range(repeat):
        server.drop_database(into)
        raw = run("raw createdb + pg_restore -j 2", raw_restore)
        ours = run("autograph backup db restore --jobs 2", lambda: shipped(
            "restore", "bench_0", "--yes", "--jobs", "2"))
        pairs["restore"].append((raw, ours))
        for old in manager.previous_databases():
            server.drop_database(old)
    server.drop_database(into)
    return pairs


def report(pairs: dict[str, list[tuple[Sample, Sample]]]) -> None:
    """Per operation: paired ratios shipped/raw, median (min-max), wall and CPU; load."""
    print(f"\n{'operation':<10} {'runs':>4} {'wall ratio':>22} {'cpu ratio':>22} "
          f"{'raw wall':>9} {'ours wall':>9} {'load':>10}")
    for operation, runs in pairs.items():
        walls = [o[0] / r[0] for r, o in runs]
        cpus = [o[1] / r[1] for r, o in runs]
        loads = [s[2] for pair in runs for s in pair]
        print(f"{operation:<10} {len(runs):>4} {_spread(walls):>22} {_spread(cpus):>22} "
              f"{statistics.median(r[0] for r, _ in runs):8.2f}s "
              f"{statistics.median(o[0] for _, o in runs):8.2f}s "
              f"{min(loads):4.1f}-{max(loads):4.1f}")
    print("targets: create <= 1.10x pg_dump -Fc, restore <= 1.10x createdb + pg_restore -j 2 "
          "(wall)")


def _spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


if __name__ == "__main__":
    raise SystemExit(main())
