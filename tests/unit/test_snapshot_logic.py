"""Pure parts of bucket snapshots: names, retention, mass-deletion detection, status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autograph.dr.buckets.snapshots.prune import decide
from autograph.dr.buckets.snapshots.store import Snapshot, SnapshotObject, parse_name, snapshot_name
from autograph.dr.buckets.snapshots.taking import shrinkage
from autograph.dr.monitor.status import snapshot_status
from autograph.dr.retention.policy import RetentionPolicy
from autograph.dr.scheduler import NextRun
from autograph.errors import IntegrityError, InvalidInput

NOON = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def _snapshot(name: str, keys: list[str]) -> Snapshot:
    objects = [SnapshotObject(k, 1, "e", "t", "text/plain", {}, "0" * 64) for k in keys]
    return Snapshot(name=name, bucket="diagrams", started_at=NOON, finished_at=NOON,
                    objects=objects)


def test_names_round_trip_to_the_millisecond_and_odd_names_are_refused() -> None:
    moment = NOON + timedelta(microseconds=123_456)
    name = snapshot_name("my.bucket-1", moment)
    assert name == "snap_my.bucket-1_20260504T120000123Z"
    assert parse_name(name) == ("my.bucket-1", NOON + timedelta(milliseconds=123))
    for bad in ("snap_diagrams_2026", "../snap_diagrams_20260504T120000123Z",
                "snap_Diagrams_20260504T120000123Z", "manual_backup_x", ""):
        with pytest.raises(InvalidInput):
            parse_name(bad)


def _verdict(names: list[str], policy: RetentionPolicy) -> dict[str, tuple[str, ...]]:
    """``{name: keep reasons}`` (empty: removed) of one bucket's snapshots."""
    bucket = parse_name(names[0])[0] if names else "diagrams"
    return {d.name: tuple(d.reasons) if d.keep else ()
            for d in decide({"local": names}, [bucket], NOON, policy)}


def test_retention_keeps_the_last_hour_then_one_per_hour_then_one_per_day() -> None:
    times = [NOON - timedelta(minutes=m) for m in range(0, 60 * 50, 20)]  # 50 h, every 20 min
    names = [snapshot_name("diagrams", t) for t in times]
    policy = RetentionPolicy(last=1, within=timedelta(hours=1), hourly=24, daily=3)
    verdict = _verdict(names, policy)
    kept = [n for n in names if verdict[n]]
    assert verdict[names[0]][0] == "last (1 of 1)"
    assert all(verdict[n] for n in names[:4])  # 0, 20, 40, 60 minutes old
    assert "within the last 1h" in verdict[names[3]]  # exactly one hour old: the boundary
    assert "within the last 1h" not in verdict[names[4]]
    recent_hours = sorted({t.replace(minute=0) for t in times}, reverse=True)[:24]
    assert set(recent_hours) <= {parse_name(n)[1].replace(minute=0) for n in kept}
    older = [n for n in kept if parse_name(n)[1] < recent_hours[-1]]
    assert older and all(r.startswith("daily") for n in older for r in verdict[n])
    days = {parse_name(n)[1].date() for n in kept}
    assert len(days) == 3
    assert len(kept) < len(names) / 2
    assert _verdict([], policy) == {}


def test_only_the_newest_survives_a_policy_of_zeros() -> None:
    names = [snapshot_name("exports", NOON - timedelta(hours=h)) for h in range(5)]
    verdict = _verdict(names, RetentionPolicy(last=1))
    assert [n for n in names if verdict[n]] == [names[0]]


def test_each_bucket_is_decided_on_its_own_with_its_tiers() -> None:
    old = NOON - timedelta(days=30)
    a, b = snapshot_name("diagrams", old), snapshot_name("exports", old - timedelta(hours=1))
    decisions = {d.name: d for d in decide({"local": [a, b], "s3": [b]},
                                           ["diagrams", "exports"], NOON,
                                           RetentionPolicy(last=1, hourly=2))}
    assert decisions[a].keep and decisions[b].keep  # each the newest of its own bucket
    assert (decisions[a].kind, decisions[a].source) == ("snapshot", "diagrams")
    assert decisions[b].locations == ["local", "s3"]


def _flag(parent: Snapshot | None, keys: list[str], name: str = "s") -> Snapshot:
    snapshot = _snapshot(name, keys)
    shrinkage(parent, snapshot)
    return snapshot


def test_a_snapshot_missing_most_of_its_parent_is_a_mass_deletion() -> None:
    parent = _snapshot("p", ["a", "b", "c", "d"])
    assert _flag(parent, ["a", "b", "x", "y"]).shrunk is None  # replaced, not gone
    assert _flag(parent, ["a"]).shrunk == "3 of the 4 objects of p are gone"
    assert _flag(_snapshot("p", ["a", "b"]), []).shrunk is None  # too small to judge
    assert _flag(None, []).shrunk is None


def test_the_snapshots_after_a_mass_deletion_stay_flagged_until_the_bucket_regrows() -> None:
    full = _snapshot("full", [f"k{i}" for i in range(10)])
    emptied = _flag(full, [], "emptied")
    still_empty = _flag(emptied, [], "still")  # its parent is empty: judged by the baseline
    assert still_empty.shrunk == "10 of the 10 objects of full are gone"
    assert (still_empty.baseline, still_empty.baseline_objects) == ("full", 10)
    regrown = _flag(still_empty, [f"n{i}" for i in range(6)], "regrown")
    assert regrown.shrunk is None and regrown.baseline is None


def test_snapshot_status_warns_when_the_loop_stopped_or_never_ran() -> None:
    fresh = snapshot_status("diagrams", [("s1", NOON - timedelta(seconds=30)),
                                         ("s0", NOON - timedelta(seconds=150))],
                            now=NOON, interval=120, rpo_target_seconds=300)
    assert (fresh.status, fresh.latest, fresh.age_seconds, fresh.within_rpo) == (
        "ok", "s1", 30.0, True)
    stale = snapshot_status("diagrams", [("s1", NOON - timedelta(seconds=400))], now=NOON,
                            interval=120, rpo_target_seconds=300)
    assert stale.status == "warning" and not stale.within_rpo
    assert "scheduler running" in stale.problems[0]
    assert stale.next_scheduled_run is None  # no schedule given
    none = snapshot_status("diagrams", [], now=NOON, interval=120, rpo_target_seconds=300)
    assert none.status == "warning" and none.problems == ["no snapshot yet"]
    run = NextRun(kind="snapshot", source="diagrams", interval_seconds=120, last_success=None,
                  last_success_name=None, next_run_at=NOON + timedelta(seconds=120),
                  retrying_after_failure=True, last_error="bucket down")
    failing = snapshot_status("diagrams", [], now=NOON, interval=120, rpo_target_seconds=300,
                              run=run)
    assert (failing.next_scheduled_run, failing.retrying_after_failure, failing.last_error) == (
        NOON + timedelta(seconds=120), True, "bucket down")


def test_an_index_damaged_anywhere_is_an_integrity_error() -> None:
    data = _snapshot("snap_diagrams_20260504T120000000Z", [f"k{i}" for i in range(200)]).encode()
    for where in range(10, len(data) - 1, max(1, len(data) // 40)):
        damaged = bytearray(data)
        damaged[where] ^= 0xFF
        with pytest.raises(IntegrityError):
            Snapshot.decode(bytes(damaged), "test")
    assert Snapshot.decode(data, "test").objects[0].key == "k0"
