"""Choosing one recovery point for the database and the buckets from the tiers' protected
points (local tier on disk; pure otherwise)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autograph.config import Settings, load_settings
from autograph.dr.buckets.snapshots.store import SnapshotStore
from autograph.dr.buckets.watermark import read_watermark, write_watermark
from autograph.dr.recovery.consistent import choose_point
from autograph.secrets import load_credentials

PROTECTED = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", backup_dir=tmp_path / "backups")


def _protect(settings: Settings, moment: datetime) -> None:
    write_watermark(SnapshotStore(settings, None, with_s3=False).local, moment)


def test_without_a_protected_point_the_point_is_not_known_to_be_consistent(
        settings: Settings) -> None:
    point = choose_point(settings, load_credentials(settings), None, with_s3=False)
    assert point.point is None and point.consistent is None
    assert "no protected point" in point.note and "local" in point.unknown


@pytest.mark.parametrize(("to", "consistent", "expected"), [
    (None, True, PROTECTED),                                 # as late as the backups allow
    (PROTECTED - timedelta(minutes=5), True, PROTECTED - timedelta(minutes=5)),
    (PROTECTED + timedelta(seconds=30), False, PROTECTED + timedelta(seconds=30)),
])
def test_the_point_is_the_protected_one_or_an_earlier_to(
        settings: Settings, to: datetime | None, consistent: bool, expected: datetime) -> None:
    _protect(settings, PROTECTED)
    point = choose_point(settings, load_credentials(settings), to, with_s3=False)
    assert point.point == expected and point.consistent is consistent
    assert point.protected == {"local": PROTECTED}
    if not consistent:  # said before anything is restored
        assert "cannot make it consistent" in point.note


def test_the_protected_point_never_moves_backwards(settings: Settings) -> None:
    tier = SnapshotStore(settings, None, with_s3=False).local
    write_watermark(tier, PROTECTED)
    write_watermark(tier, PROTECTED - timedelta(seconds=10))  # a slower gateway's late pass
    assert read_watermark(tier) == PROTECTED


def test_dangling_rows_are_corruption_unless_their_objects_were_destroyed_before_protection(
        ) -> None:
    from autograph.dr.recovery.consistent import judge_dangling

    dangling = {"diagram_versions": ["d1/a.json"], "uploads": ["d1/u1"]}
    lost = ["diagrams/d1/a.json", "uploads/d1/u1"]
    corrupt, said = judge_dangling(dangling, lost, buckets_only=True)
    assert not corrupt and "destroyed before they were protected" in said and "d1/u1" in said
    # the database was restored too: its point was chosen so that this cannot happen
    corrupt, said = judge_dangling(dangling, lost, buckets_only=False)
    assert corrupt and said.startswith("data corruption: 2 rows") and "d1/a.json" in said
    corrupt, _said = judge_dangling(dangling, lost[:1], buckets_only=True)  # one unexplained
    assert corrupt
