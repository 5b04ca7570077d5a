"""The RPO judged once against the continuous protection: WAL over a base backup, snapshots,
the consistent point and the off-site lag; a daily dump alone misses a 5-minute target."""

from __future__ import annotations

from autograph.dr.monitor.rpo import judge_rpo

BASE = {"wal_age": None, "base_backup": False, "dump_age": 3600.0, "buckets": [],
        "consistent_age": None, "offsite_lag": None, "offsite_configured": False}


def judge(**changes: object):  # type: ignore[no-untyped-def]
    return judge_rpo(300, **{**BASE, **changes})  # type: ignore[arg-type]


def test_a_dump_alone_misses_and_the_wal_over_a_base_backup_meets_it() -> None:
    alone = judge()
    assert not alone.met and alone.exposure_seconds == 3600.0
    assert alone.parts[0].protected_by == "newest dump"
    streamed = judge(wal_age=12.0, base_backup=True)
    assert streamed.met and streamed.parts[0].protected_by == "WAL stream"
    assert streamed.exposure_seconds == 12.0
    assert not judge(wal_age=12.0, base_backup=False).met  # WAL without a base: no restore


def test_the_worst_bucket_counts_and_an_unprotected_one_misses() -> None:
    result = judge(wal_age=5.0, base_backup=True,
                   buckets=[("diagrams", 30.0, 86400.0), ("uploads", 400.0, None)])
    objects = result.parts[1]
    assert objects.age_seconds == 400.0 and objects.protected_by == "snapshot of uploads"
    assert not result.met
    bare = judge(wal_age=5.0, base_backup=True, buckets=[("exports", None, None)])
    assert bare.exposure_seconds is None and not bare.met
    lifted = judge(wal_age=5.0, base_backup=True, buckets=[("uploads", 400.0, None)],
                   consistent_age=20.0)
    assert lifted.met and lifted.parts[1].protected_by == "consistent point of uploads"


def test_the_offsite_lag_is_a_part_when_configured() -> None:
    assert [p.name for p in judge(wal_age=1.0, base_backup=True).parts] == ["database"]
    late = judge(wal_age=1.0, base_backup=True, offsite_configured=True, offsite_lag=900.0)
    assert not late.met and late.exposure_seconds == 900.0
    unknown = judge(wal_age=1.0, base_backup=True, offsite_configured=True, offsite_lag=None)
    assert not unknown.met and unknown.parts[-1].protected_by.startswith("unknown")


def test_an_idle_database_whose_wal_receiver_is_caught_up_loses_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An idle database writes no WAL, so its newest segment ages; while the receiver holds
    everything the server flushed, the database part is not exposed at all."""
    import os
    import time

    from autograph.config import load_settings
    from autograph.dr.monitor.status import SourceStatus, rpo_of

    settings = load_settings(home=tmp_path)
    folder = settings.backups_dir / "wal" / "7300000000000000001"
    folder.mkdir(parents=True)
    segment = folder / "000000010000000000000003.partial"
    segment.write_bytes(b"\0")
    hour_ago = time.time() - 3600
    os.utime(segment, (hour_ago, hour_ago))
    base = SourceStatus(kind="basebackup", source="cluster", status="ok", backups=1,
                        age_seconds=7200.0, rpo_target_seconds=300, within_rpo=False,
                        interval_seconds=86400.0, within_schedule=True)
    idle = rpo_of(settings, [base], [], None, None)
    assert not idle.met and idle.parts[0].age_seconds is not None
    assert idle.parts[0].age_seconds >= 3600
    live = rpo_of(settings, [base], [], None, None, wal_streaming=True)
    assert live.met and live.parts[0].age_seconds == 0.0
    assert live.parts[0].protected_by == "WAL stream"
