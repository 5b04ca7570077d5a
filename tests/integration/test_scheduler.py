"""The scheduler over a real catalog folder: derived from the catalog, one run across processes,
restarts that neither skip nor repeat, retries after failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from autograph.dr.catalog import Catalog
from autograph.dr.ops import locks
from autograph.dr.retention.prune import prune_kind
from autograph.dr.scheduler import Schedule, Scheduler
from autograph.errors import OperationFailed
from catalogutil import add_backup, local_catalog, names

T0 = datetime(2024, 3, 10, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SRC = Path(__file__).resolve().parents[2] / "src"
TESTS = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Producer:
    """Commits a scheduled backup through the catalog when asked; can be told to fail."""

    def __init__(self, catalog: Catalog, clock: Clock) -> None:
        self.catalog, self.clock = catalog, clock
        self.calls: list[datetime] = []
        self.fail = False

    def __call__(self, source: str) -> object:
        self.calls.append(self.clock())
        if self.fail:
            raise OperationFailed("pg_dump exited with 1")
        moment = self.clock()
        return add_backup(self.catalog, f"scheduled_backup_{moment:%Y%m%d_%H%M%S}", moment,
                          source=source)


def scheduler(tmp_path: Path, producer: Producer, clock: Clock, *, delay: float = 0.0,
              prune: bool = False) -> Scheduler:
    catalog = producer.catalog
    schedule = Schedule("database", DAY, ("autograph",), catalog, producer,
                        (lambda: prune_kind(catalog, clock())) if prune else None)
    return Scheduler([schedule], tmp_path, clock=clock, startup_delay=delay, retry=3600)


def test_a_restart_just_after_a_run_does_not_run_it_again(tmp_path: Path) -> None:
    clock = Clock()
    producer = Producer(local_catalog(tmp_path, "database"), clock)
    first = scheduler(tmp_path, producer, clock)
    assert [r.results for r in first.tick()] == [{"autograph": "succeeded"}]

    clock.now = T0 + timedelta(minutes=1)
    restarted = scheduler(tmp_path, producer, clock)
    assert restarted.tick() == []
    assert restarted.plan()[0].next_run_at == T0 + DAY
    assert len(producer.calls) == 1

    clock.now = T0 + DAY
    assert [r.results for r in restarted.tick()] == [{"autograph": "succeeded"}]
    assert producer.calls == [T0, T0 + DAY]


def test_a_run_missed_while_down_runs_soon_after_start(tmp_path: Path) -> None:
    clock = Clock()
    catalog = local_catalog(tmp_path, "database")
    add_backup(catalog, "scheduled_backup_20240307_020000", T0 - 3 * DAY)
    producer = Producer(catalog, clock)
    started = scheduler(tmp_path, producer, clock, delay=30)

    assert started.plan()[0].next_run_at == T0 + timedelta(seconds=30)
    assert started.tick() == []
    clock.now = T0 + timedelta(seconds=30)
    assert [r.results for r in started.tick()] == [{"autograph": "succeeded"}]
    assert len(names(catalog)) == 2


def test_manual_backups_do_not_move_the_schedule(tmp_path: Path) -> None:
    clock = Clock()
    catalog = local_catalog(tmp_path, "database")
    add_backup(catalog, "manual_backup_20240310_013000", T0 - timedelta(minutes=30),
               tags=("manual",))
    producer = Producer(catalog, clock)
    assert len(scheduler(tmp_path, producer, clock).tick()) == 1


def test_a_failed_run_is_retried_after_the_retry_delay_by_any_process(tmp_path: Path) -> None:
    clock = Clock()
    producer = Producer(local_catalog(tmp_path, "database"), clock)
    producer.fail = True
    first = scheduler(tmp_path, producer, clock)
    record = first.tick()[0]
    assert record.results == {"autograph": "failed"}
    assert record.errors == {"autograph": "pg_dump exited with 1"}

    clock.now = T0 + timedelta(minutes=10)
    other = scheduler(tmp_path, producer, clock)  # another gateway reads the same state
    plan = other.plan()[0]
    assert plan.retrying_after_failure and plan.last_error == "pg_dump exited with 1"
    assert plan.next_run_at == T0 + timedelta(hours=1)
    assert first.tick() == [] and other.tick() == []

    producer.fail = False
    clock.now = T0 + timedelta(hours=1)
    assert [r.results for r in other.tick()] == [{"autograph": "succeeded"}]
    assert not other.plan()[0].retrying_after_failure
    assert len(producer.calls) == 2


def test_a_run_is_deferred_while_another_operation_holds_the_kind(tmp_path: Path) -> None:
    clock = Clock()
    catalog = local_catalog(tmp_path, "database")
    calls: list[str] = []

    def backup(source: str) -> object:
        calls.append(source)
        with locks.acquire(tmp_path, "database", "backup"):  # as the managers do
            return add_backup(catalog, "scheduled_backup_20240310_020000", clock(),
                              source=source)

    sched = Scheduler([Schedule("database", DAY, ("autograph",), catalog, backup)], tmp_path,
                      clock=clock, startup_delay=0)
    with locks.acquire(tmp_path, "database", "restore", "x"):
        assert [r.results for r in sched.tick()] == [{"autograph": "deferred"}]
    assert not sched.plan()[0].retrying_after_failure
    assert [r.results for r in sched.tick()] == [{"autograph": "succeeded"}]


def test_prune_runs_after_each_scheduled_backup(tmp_path: Path) -> None:
    clock = Clock()
    catalog = local_catalog(tmp_path, "database")
    add_backup(catalog, "scheduled_backup_20240309_020000", T0 - DAY)
    # Neither scheduled nor manual (say, copied in by hand): superseded by today's backup.
    add_backup(catalog, "imported_20240310_010000", T0 - timedelta(hours=1), tags=(),
               verification="not_verified")
    producer = Producer(catalog, clock)
    record = scheduler(tmp_path, producer, clock, prune=True).tick()[0]
    assert record.results == {"autograph": "succeeded"}
    assert record.pruned == ["imported_20240310_010000"]
    assert names(catalog) == {"scheduled_backup_20240309_020000",
                              "scheduled_backup_20240310_020000"}


WORKER = """
import json, sys, time
from datetime import timedelta
from pathlib import Path
from autograph.dr.scheduler import Schedule, Scheduler
from autograph.clock import utc_now
from catalogutil import add_backup, local_catalog

folder, barrier = Path(sys.argv[1]), Path(sys.argv[2])
catalog = local_catalog(folder, "database")
runs = []

def backup(source):
    now = utc_now()
    runs.append(now.isoformat())
    time.sleep(1.0)  # hold the schedule lock while the other process keeps ticking
    return add_backup(catalog, f"scheduled_backup_{now:%Y%m%d_%H%M%S_%f}", now, source=source)

sched = Scheduler([Schedule("database", timedelta(hours=1), ("autograph",), catalog, backup)],
                  folder, startup_delay=0)
while not barrier.exists():
    time.sleep(0.01)
ticks = 0
deadline = time.monotonic() + 2.5
while time.monotonic() < deadline:
    sched.tick()
    ticks += 1
    time.sleep(0.05)
print(json.dumps({"runs": runs, "ticks": ticks}))
"""


def test_two_processes_on_one_backup_folder_run_one_scheduled_backup(tmp_path: Path) -> None:
    barrier = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(barrier)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env) for _ in range(2)]
    barrier.touch()
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        outputs.append(json.loads(out))

    assert sum(len(o["runs"]) for o in outputs) == 1
    assert all(o["ticks"] > 1 for o in outputs)
    catalog = local_catalog(tmp_path, "database")
    assert len([e for e in catalog.list().backups if e.name.startswith("scheduled_")]) == 1
