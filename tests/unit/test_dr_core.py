"""Pure pieces of the DR core: names, row-count comparison, jobs, hooks, locks."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from autograph.dr.models import ProgressFn, validate_name
from autograph.dr.ops import hooks, locks
from autograph.dr.ops.jobs import JobRegistry
from autograph.dr.postgres.restore import count_mismatches
from autograph.dr.postgres.server import derived_name
from autograph.errors import Conflict, InvalidInput, NotFound


@pytest.mark.parametrize("name", ["a", "scheduled_backup_20240101_120000", "A.b-c_d",
                                  "9" + "x" * 127])
def test_valid_names_pass(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "../../etc/passwd", "a/b", "a" * 129, "bäckup",
                                  ".hidden", "-dash", "_under", "name\n", "a b", "a\\b"])
def test_invalid_names_raise_invalid_input(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_name(name)


def test_count_mismatches_names_every_difference() -> None:
    expected = {"public.a": 3, "public.b": 5, "public.gone": 1}
    actual = {"public.a": 3, "public.b": 4, "public.new": 0}
    assert count_mismatches(expected, actual) == [
        "public.b: expected 5, found 4",
        "public.gone: expected 1, found no table",
        "public.new: expected no table, found 0",
    ]
    assert count_mismatches(expected, dict(expected)) == []
    assert count_mismatches(None, actual) == []


def test_derived_database_names_fit_postgres_identifier_limit() -> None:
    assert derived_name("autograph", "pre_restore", "20240101120000") == \
        "autograph__pre_restore_20240101120000"
    long = derived_name("d" * 80, "pre_restore", "20240101120000")
    assert len(long.encode()) == 63 and long.endswith("__pre_restore_20240101120000")


def test_job_registry_records_success_failure_and_progress() -> None:
    registry = JobRegistry()
    gate = threading.Event()

    def work(progress: ProgressFn) -> dict[str, int]:
        progress("halfway", 0.5)
        gate.wait(5)
        return {"answer": 42}

    job = registry.submit("test.ok", work)
    assert registry.get(job.id).status == "running"
    gate.set()
    for _ in range(200):
        if registry.get(job.id).status != "running":
            break
        threading.Event().wait(0.01)
    done = registry.get(job.id)
    assert done.status == "succeeded" and done.result == {"answer": 42}

    def broken(_progress: object) -> None:
        raise NotFound("no such backup")

    released = threading.Event()
    failed = registry.submit("test.fail", broken, cleanup=released.set)
    assert released.wait(5)
    record = registry.get(failed.id)
    assert record.status == "failed"
    assert record.error == "no such backup" and record.error_status == 404


def test_job_ids_are_validated() -> None:
    registry = JobRegistry()
    with pytest.raises(InvalidInput):
        registry.get("../etc")
    with pytest.raises(NotFound):
        registry.get("0" * 32)


def test_event_bus_delivers_and_isolates_failing_subscribers() -> None:
    bus = hooks.EventBus()
    seen: list[str] = []

    def broken(_event: hooks.BackupEvent) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(lambda event: seen.append(event.event))
    bus.emit(hooks.BackupEvent("backup_failed", "database", "x", "pg_dump failed"))
    unsubscribe()
    bus.emit(hooks.BackupEvent("backup_succeeded", "database", "y", "ok"))
    assert seen == ["backup_failed"]


def test_kind_lock_conflicts_until_released(tmp_path: Path) -> None:
    first = locks.acquire(tmp_path, "database", "restore", "nightly")
    with pytest.raises(Conflict, match="database restore of nightly is already running"):
        locks.acquire(tmp_path, "database", "backup")
    assert locks.holder(tmp_path, "database")["operation"] == "restore"  # type: ignore[index]
    other_kind = locks.acquire(tmp_path, "bucket", "backup")
    other_kind.release()
    first.release()
    with locks.acquire(tmp_path, "database", "backup"):
        pass
    assert locks.holder(tmp_path, "database") is None


def test_busy_marks_are_visible_until_the_block_ends(tmp_path: Path) -> None:
    with locks.mark_busy(tmp_path, "database", "a__b", "restore"):
        assert locks.busy_names(tmp_path, "database") == {"a__b"}
        assert locks.busy_names(tmp_path, "bucket") == set()
    assert locks.busy_names(tmp_path, "database") == set()
