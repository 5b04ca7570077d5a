"""Prune over real catalogs: a local folder and a private prefix of the real S3 backup bucket."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autograph.cli.main import app
from autograph.dr.catalog import Catalog
from autograph.dr.ops import locks
from autograph.dr.retention.prune import pin, prune, prune_kind
from autograph.errors import Conflict
from autograph.s3.boto import backup_client, make_client
from autograph.stack.lifecycle import Stack
from catalogutil import add_backup, local_catalog, names, two_tier_catalog
from stackutil import free_port_block

NOW = datetime(2024, 6, 26, 12, 0, tzinfo=UTC)  # a Wednesday


def _same_day_history(catalog: Catalog) -> None:
    """Ten database backups on one day: only the newest is the day's (and week's, month's)."""
    day = NOW.replace(hour=0)
    add_backup(catalog, "b01_verified", day + timedelta(hours=1), verification="passed")
    add_backup(catalog, "b02_manual", day + timedelta(hours=2), tags=("manual",),
               verification="not_verified")
    add_backup(catalog, "b03_pinned", day + timedelta(hours=3), tags=("scheduled", "pinned"),
               verification="not_verified")
    add_backup(catalog, "b04_busy", day + timedelta(hours=4), verification="not_verified")
    for hour in range(5, 10):
        add_backup(catalog, f"b{hour:02d}_plain", day + timedelta(hours=hour),
                   verification="not_verified")
    add_backup(catalog, "b10_newest", day + timedelta(hours=10), verification="not_verified")


@pytest.fixture
def s3_client(infra_stack: Stack) -> object:
    return backup_client(infra_stack.settings, infra_stack.creds)


def test_dry_run_says_what_would_go_and_why_and_changes_nothing(tmp_path: Path) -> None:
    catalog = local_catalog(tmp_path, "database")
    _same_day_history(catalog)
    before = names(catalog)

    with locks.mark_busy(tmp_path, "database", "b04_busy", "restore"):
        report = prune_kind(catalog, NOW, dry_run=True)

    assert names(catalog) == before
    by_name = {d.name: d for d in report.decisions}
    assert report.removed == [f"b{h:02d}_plain" for h in range(9, 4, -1)]
    assert "being restored or verified" in by_name["b04_busy"].reasons
    assert {d.outcome for d in report.decisions if not d.keep} == {"would remove"}
    assert by_name["b09_plain"].reasons == [
        "daily 2024-06-26 kept by newer b10_newest",
        "weekly 2024-W26 kept by newer b10_newest",
        "monthly 2024-06 kept by newer b10_newest",
    ]
    assert by_name["b10_newest"].reasons[0] == "daily 2024-06-26 (1 of 7)"
    assert "manual backup" in by_name["b02_manual"].reasons
    assert "pinned" in by_name["b03_pinned"].reasons
    assert "newest verified backup" in by_name["b01_verified"].reasons


def test_prune_deletes_from_both_tiers_and_keeps_protected_ones(
        tmp_path: Path, s3_client: object, infra_stack: Stack) -> None:
    catalog = two_tier_catalog(tmp_path, "database", s3_client,
                               infra_stack.settings.backup_bucket_database)
    _same_day_history(catalog)
    assert catalog.remote is not None

    with locks.mark_busy(tmp_path, "database", "b04_busy", "verify"):
        report = prune([catalog], NOW)

    expected_gone = {f"b{h:02d}_plain" for h in range(5, 10)}
    assert set(report.removed) == expected_gone
    assert {d.outcome for d in report.decisions if d.name in expected_gone} == {"removed"}
    kept = {"b01_verified", "b02_manual", "b03_pinned", "b04_busy", "b10_newest"}
    assert names(catalog) == kept
    local_keys = {o.key for o in catalog.local.list()}
    s3_keys = {o.key for o in catalog.remote.list()}
    for name in expected_gone:
        assert not any(key.startswith(name + ".") for key in local_keys | s3_keys)
    for name in kept:
        assert f"{name}.manifest.json" in local_keys and f"{name}.manifest.json" in s3_keys
    # The rule that keeps a backup is recorded in its tags.
    newest = catalog.get("b10_newest")
    assert {"daily", "weekly", "monthly"} <= set(newest.tags)


def test_each_bucket_keeps_its_own_weekly_history(tmp_path: Path) -> None:
    catalog = local_catalog(tmp_path, "bucket")
    for source in ("diagrams", "uploads"):
        for week in range(8):  # Sundays going back eight weeks
            moment = datetime(2024, 6, 23, 3, tzinfo=UTC) - timedelta(weeks=week)
            add_backup(catalog, f"scheduled_{source}_{moment:%Y%m%d_%H%M%S}", moment,
                       source=source)

    report = prune_kind(catalog, NOW)

    for source in ("diagrams", "uploads"):
        remaining = sorted((e.created_at for e in catalog.list().backups if e.source == source),
                           reverse=True)
        # The four most recent weeks, plus the newest of May (monthly), for each bucket.
        assert remaining == [datetime(2024, 6, 23, 3, tzinfo=UTC) - timedelta(weeks=w)
                             for w in range(5)]
    removed = [d for d in report.decisions if d.outcome == "removed"]
    assert len(removed) == 6  # three per bucket: May 19, 12 and 5
    assert all(any("older than the 4 most recent weeks" in r for r in d.reasons)
               for d in removed)


def test_nothing_is_deleted_while_a_tier_is_unreachable(tmp_path: Path) -> None:
    dead = make_client(f"http://127.0.0.1:{free_port_block()}", "k", "s", retries=1,
                       connect_timeout=0.5)
    catalog = two_tier_catalog(tmp_path, "database", dead, "autograph-backups")
    local_only = local_catalog(tmp_path, "database")
    _same_day_history(local_only)  # committed locally only (the S3 tier is down)
    before = names(local_only)

    report = prune_kind(catalog, NOW)

    assert names(local_only) == before
    assert "database/s3" in report.unreachable
    assert set(report.failed) == {"b04_busy"} | {f"b{h:02d}_plain" for h in range(5, 10)}
    assert all("unreachable" in why for why in report.failed.values())


def test_prune_refuses_while_another_operation_holds_the_kind(tmp_path: Path) -> None:
    catalog = local_catalog(tmp_path, "database")
    _same_day_history(catalog)
    with locks.acquire(tmp_path, "database", "restore", "b01_verified"), \
            pytest.raises(Conflict):
        prune_kind(catalog, NOW)
    assert len(names(catalog)) == 10


def test_pin_protects_a_backup_from_the_next_prune(tmp_path: Path) -> None:
    catalog = local_catalog(tmp_path, "database")
    _same_day_history(catalog)
    entry = pin([catalog, local_catalog(tmp_path, "bucket")], "b07_plain")
    assert "pinned" in entry.tags
    prune_kind(catalog, NOW)
    assert "b07_plain" in names(catalog)
    unpinned = pin([catalog], "b07_plain", pinned=False)
    assert "pinned" not in unpinned.tags
    prune_kind(catalog, NOW)
    assert "b07_plain" not in names(catalog)


def test_cli_prune_dry_run_and_pin(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"AUTOGRAPH_HOME": str(home), "AUTOGRAPH_S3_PORT": str(free_port_block()),
           "AUTOGRAPH_S3_ENDPOINT": ""}
    catalog = local_catalog(home.resolve() / "backups", "database")
    _same_day_history(catalog)
    runner = CliRunner()

    pinned = runner.invoke(app, ["backup", "pin", "b06_plain", "--json"], env=env)
    assert pinned.exit_code == 0, pinned.output
    assert "pinned" in json.loads(pinned.stdout)["tags"]

    result = runner.invoke(app, ["backup", "prune", "--dry-run", "--kind", "database",
                                 "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    would = {d["name"]: d for d in report["decisions"] if d["outcome"] == "would remove"}
    assert set(would) == {"b04_busy", "b05_plain", "b07_plain", "b08_plain", "b09_plain"}
    assert all(d["reasons"] for d in would.values())
    assert len(names(catalog)) == 10

    table = runner.invoke(app, ["backup", "prune", "--dry-run", "--kind", "database"], env=env)
    assert table.exit_code == 0, table.output
    assert "would remove 5 of 10 backups (dry run: nothing changed)" in table.stdout
