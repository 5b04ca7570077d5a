"""``GET /api/admin/dr/status``, ``GET /api/admin/alerts`` and ``GET /metrics`` on the gateway app
(with its DR runtime started by the lifespan), and ``autograph dr status`` reading the same."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from alertservers import free_port
from autograph.cli.main import app as cli_app
from autograph.clock import utc_now
from autograph.config import Settings, load_settings
from autograph.dr.daemon import runtime_for
from autograph.dr.drill.report import HistoryEntry
from autograph.services.gateway.app import create_app
from catalogutil import add_backup, local_catalog
from stackutil import settings_env

KEY = "test-admin-key-for-status"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        home=tmp_path / "home", backup_dir=tmp_path / "backups", admin_api_key=KEY,
        pg_port=free_port(), redis_port=free_port(), s3_port=free_port(), services=(),
        scheduler_enabled=False, monitor_enabled=False,  # the test leads the monitor itself
        disk_usage_alert_percent=100.0, backup_storage_min_free_bytes=0)


@pytest.fixture
def history(settings: Settings) -> Iterator[None]:
    now = utc_now()
    database = local_catalog(settings.backups_dir, "database")
    add_backup(database, "scheduled_backup_a", now - timedelta(hours=3), size=640)
    buckets = local_catalog(settings.backups_dir, "bucket")
    for name in ("diagrams", "uploads"):
        add_backup(buckets, f"scheduled_{name}_a", now - timedelta(days=1), source=name)
    settings.dr_dir.mkdir(parents=True, exist_ok=True)
    drill = HistoryEntry(scenario="database", mode="sandbox", started_at=now - timedelta(days=2),
                         finished_at=now - timedelta(days=2, minutes=-9), passed=True,
                         rto_seconds=540.0, rpo_seconds=12.0, report="var/dr/reports/x")
    (settings.dr_dir / "drills.jsonl").write_text(drill.model_dump_json() + "\n")
    yield


def test_status_alerts_and_metrics_through_the_gateway(settings: Settings, history: None) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/admin/dr/status").status_code == 401
        assert client.get("/metrics").status_code == 401

        status = client.get("/api/admin/dr/status", headers=AUTH)
        assert status.status_code == 200, status.text
        body = status.json()
        by_source = {(s["kind"], s["source"]): s for s in body["sources"]}
        database = by_source[("database", "autograph")]
        assert database["last_success"]["name"] == "scheduled_backup_a"
        assert 2.5 * 3600 < database["age_seconds"] < 3.5 * 3600  # finished 3 h ago
        assert database["within_rpo"] is False and database["within_schedule"] is True
        assert database["next_scheduled_run"] is not None
        assert database["last_verified"]["name"] == "scheduled_backup_a"
        exports = by_source[("bucket", "exports")]
        assert exports["status"] == "critical" and exports["last_success"] is None
        assert body["status"] == "critical"
        assert body["drills"]["last_passed"] is True and body["drills"]["next_scheduled"]
        assert "database/s3" in body["unreachable"]  # the S3 tier is down in this test

        runtime = runtime_for(client.app.state.resources)  # type: ignore[attr-defined]
        assert runtime is not None and runtime.try_lead()
        assert runtime.dispatcher is not None
        runtime.dispatcher.fire("backup_failed:database", "backup_failed", "critical",
                                "database backup failed: pg_dump exited with 1",
                                {"kind": "database", "source": "autograph"})
        alerts = client.get("/api/admin/alerts", headers=AUTH).json()
        assert [a["key"] for a in alerts["active"]] == ["backup_failed:database"]
        assert alerts["monitor"] == "leader"
        assert alerts["channels"] == ["console", "file"]

        metrics = client.get("/metrics", headers=AUTH)
        assert metrics.status_code == 200
        text = metrics.text
        assert 'autograph_backup_last_size_bytes{kind="database",source="autograph"} 640.0' \
            in text
        assert 'autograph_alerts_active{rule="backup_failed",severity="critical"} 1.0' in text
        assert 'autograph_backup_count{kind="bucket",source="exports"} 0.0' in text
        assert 'autograph_dr_status{status="critical"} 1.0' in text
        assert "autograph_drill_last_passed 1.0" in text

    # With the gateway gone, the CLI reads the same catalogs and the persisted alert state.
    result = CliRunner().invoke(cli_app, ["dr", "status", "--json"], env=settings_env(settings))
    assert result.exit_code == 2, result.output  # critical: two buckets never backed up
    cli = json.loads(result.stdout)
    assert [a["key"] for a in cli["active_alerts"]] == ["backup_failed:database"]
    assert {(s["kind"], s["source"]) for s in cli["sources"]} == {
        ("database", "autograph"), ("bucket", "diagrams"), ("bucket", "exports"),
        ("bucket", "uploads"), ("basebackup", "cluster")}
    table = CliRunner().invoke(cli_app, ["dr", "status"], env=settings_env(settings))
    assert "backup_failed:database" in table.stdout and "scheduled_backup_a" in table.stdout
    # Each kind against its own schedule, the RPO once against the continuous protection.
    assert cli["rpo"]["met"] is False and cli["rpo"]["parts"][0]["protected_by"] == "newest dump"
    lines = table.stdout.splitlines()
    dump = next(line for line in lines if "scheduled_backup_a" in line)
    assert "every 1 d: on time" in dump and "RPO" not in dump
    flat = " ".join(table.stdout.split())  # rich wraps long lines
    assert flat.count("missed") == 1 and flat.count("RPO (continuous protection)") == 1
    assert "RPO (continuous protection): missed, no protection for a part" in flat
    assert "database: newest dump 3 h" in flat and "objects: no copy of exports (over)" in flat


def test_metrics_can_be_public_by_configuration(settings: Settings) -> None:
    public = settings.model_copy(update={"metrics_public": True})
    with TestClient(create_app(public)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert "autograph_dr_status" in response.text
