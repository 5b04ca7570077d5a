"""Leases across hosts that share no disk: two schedulers with their own backup folders (no
shared file, so no shared ``flock``) agree through PostgreSQL and the backup S3 store and run a
schedule once per interval across a day of injected clock; a holder killed mid-lease is taken
over at once while PostgreSQL answers (its session ended), and after the lease's expiry when
only S3 is there."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from autograph.config import Settings
from autograph.dr.ops.leases import PREFIX, LeaseManager, LeaseRecord
from autograph.errors import Conflict
from autograph.s3.boto import backup_client, ensure_buckets
from autograph.stack.lifecycle import Stack
from catalogutil import local_catalog
from stackutil import free_port_block, settings_env

SRC = Path(__file__).resolve().parents[2] / "src"
TESTS = Path(__file__).resolve().parents[1]
T0 = "2024-03-10T02:00:00+00:00"
REAL_SECONDS_PER_DAY = 16.0

WORKER = """
import json, sys, time
from datetime import datetime, timedelta
from pathlib import Path
from autograph.config import load_settings
from autograph.dr.catalog import LOCAL_FOLDERS, Catalog
from autograph.dr.ops import leases, locks
from autograph.dr.scheduler import Schedule, Scheduler
from autograph.dr.storage.local import LocalStore
from autograph.dr.storage.s3 import S3Store
from autograph.errors import Conflict
from autograph.s3.boto import backup_client
from autograph.secrets import load_credentials
from catalogutil import add_backup

folder, barrier, prefix, t0 = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
folder.mkdir(parents=True, exist_ok=True)
settings = load_settings()
creds = load_credentials(settings)
catalog = Catalog("database", LocalStore(folder / LOCAL_FOLDERS["database"]),
                  S3Store(backup_client(settings, creds), settings.backup_bucket_database, prefix),
                  folder)
manager = leases.LeaseManager(settings, creds, ttl=settings.lease_ttl_seconds)
refused = []
def take(name, operation):
    try:
        return manager.acquire(name, operation)
    except Conflict:
        refused.append(name)
        raise
locks.use_leases(take)
catalog.list()  # warm up: imports, connections, the first listing
manager.acquire(f"warm-up-{folder.name}", "warm up").release()
(folder / "ready").touch()
while not barrier.exists():
    time.sleep(0.005)
epoch, start = barrier.stat().st_mtime, datetime.fromisoformat(t0)
def clock():  # one injected day every few real seconds, the same in both processes
    return start + timedelta(days=(time.time() - epoch) / float(sys.argv[5]))
runs = []
def backup(source):
    now = clock()
    runs.append(now.isoformat())
    time.sleep(0.2)  # hold the schedule while the other process keeps ticking
    return add_backup(catalog, f"scheduled_backup_{now:%Y%m%d_%H%M%S_%f}", now, source=source)
sched = Scheduler([Schedule("database", timedelta(hours=6), ("autograph",), catalog, backup)],
                  folder, clock=clock, startup_delay=0, started_at=start)
ticks = 0
while clock() < start + timedelta(days=1):
    sched.tick()
    ticks += 1
    time.sleep(0.01)
print(json.dumps({"runs": runs, "ticks": ticks, "refused": len(refused)}))
"""


@pytest.fixture
def cluster_settings(infra_stack: Stack, tmp_path: Path) -> Settings:
    """The infra stack's PostgreSQL and S3, cluster leases, a backup bucket of this test."""
    bucket = f"lease-{secrets.token_hex(4)}"
    settings = infra_stack.settings.model_copy(update={
        "backup_bucket_database": bucket, "leases": "cluster", "lease_ttl_seconds": 3.0})
    ensure_buckets(backup_client(settings, infra_stack.creds), [bucket])
    return settings


def test_two_hosts_without_a_shared_folder_run_each_schedule_once(
        cluster_settings: Settings, tmp_path: Path) -> None:
    barrier, prefix = tmp_path / "go", f"test-{secrets.token_hex(4)}/"
    env = {**os.environ, **settings_env(cluster_settings),
           "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    folders = [tmp_path / "host-a", tmp_path / "host-b"]
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(folder), str(barrier), prefix,
                                 T0, str(REAL_SECONDS_PER_DAY)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env) for folder in folders]
    deadline = time.monotonic() + 60
    while not all((folder / "ready").exists() for folder in folders):
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
        time.sleep(0.05)
    barrier.touch()
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=90)
        assert worker.returncode == 0, err
        outputs.append(json.loads(out))

    runs = sorted(run for output in outputs for run in output["runs"])
    assert len(runs) == 4, runs  # 02:00, 08:00, 14:00, 20:00 (each a little later)
    assert all(o["ticks"] > 10 for o in outputs)
    assert sum(o["refused"] for o in outputs) > 0, "the two never contended: no proof"
    # each host's own folder holds only its own backups: nothing was shared through disk
    mine = [{e.name for e in local_catalog(folder, "database").list().backups}
            for folder in folders]
    assert not (mine[0] & mine[1])


HOLDER = """
import sys, time
from autograph.config import load_settings
from autograph.dr.ops.leases import LeaseManager
from autograph.secrets import load_credentials
settings = load_settings()
manager = LeaseManager(settings, load_credentials(settings), ttl=float(sys.argv[2]))
lease = manager.acquire(sys.argv[1], "held")
print(",".join(lease.backends), flush=True)
time.sleep(600)
"""


def _killed_holder(settings: Settings, name: str, ttl: float) -> str:
    """Start a process that takes lease ``name``; SIGKILL it once it holds it; its backends."""
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(SRC)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, name, str(ttl)],
                              stdout=subprocess.PIPE,
                              text=True, env=env)
    assert holder.stdout is not None
    backends = holder.stdout.readline().strip()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    return backends


def _lease_object(settings: Settings, creds: Any, name: str) -> LeaseRecord:
    body = backup_client(settings, creds).get_object(
        Bucket=settings.backup_bucket_database, Key=f"{PREFIX}{name}.json")["Body"].read()
    return LeaseRecord.model_validate_json(body)


def test_a_killed_holder_is_taken_over_at_once_while_postgres_answers(
        cluster_settings: Settings, infra_stack: Stack) -> None:
    name = f"schedule-{secrets.token_hex(3)}"
    assert _killed_holder(cluster_settings, name, ttl=60.0) == "postgres,s3"
    expires = _lease_object(cluster_settings, infra_stack.creds, name).expires_at
    lease = LeaseManager(cluster_settings, infra_stack.creds, ttl=3.0).acquire(name, "take")
    try:
        assert lease.backends == ("postgres", "s3")
        record = _lease_object(cluster_settings, infra_stack.creds, name)
        assert record.operation == "take"
        assert record.acquired_at < expires  # long before the dead holder's lease expired
        with pytest.raises(Conflict):  # and now it is ours: a third process is refused
            LeaseManager(cluster_settings, infra_stack.creds, ttl=3.0).acquire(name, "third")
    finally:
        lease.release()


def test_a_killed_holder_is_taken_over_after_expiry_when_only_s3_answers(
        cluster_settings: Settings, infra_stack: Stack) -> None:
    s3_only = cluster_settings.model_copy(update={"pg_port": free_port_block()})  # nobody there
    name = f"schedule-{secrets.token_hex(3)}"
    # A TTL long enough that "too early" is still early on a loaded machine (3 s was not in CI).
    assert _killed_holder(s3_only, name, ttl=10.0) == "s3"
    expires = _lease_object(s3_only, infra_stack.creds, name).expires_at
    contender = LeaseManager(s3_only, infra_stack.creds, ttl=3.0)
    with pytest.raises(Conflict, match="held by"):
        contender.acquire(name, "too early")
    deadline = time.monotonic() + 30
    while True:
        try:
            lease = contender.acquire(name, "after expiry")
            break
        except Conflict:
            assert time.monotonic() < deadline, "never taken over"
            time.sleep(0.2)
    try:
        assert lease.backends == ("s3",)
        record = _lease_object(s3_only, infra_stack.creds, name)
        assert record.acquired_at >= expires and record.operation == "after expiry"
    finally:
        lease.release()
    with pytest.raises(ClientError) as gone:  # released: the lease object is deleted
        _lease_object(s3_only, infra_stack.creds, name)
    assert gone.value.response["Error"]["Code"] in ("NoSuchKey", "404")
