"""The monitor's ``dangling_references`` alert on the session's app stack: a diagram whose
canvas object is gone from the ``diagrams`` bucket fires it once, naming the object; putting the
object back resolves it at the next check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from autograph.dr.alerts.dispatcher import AlertDispatcher
from autograph.dr.alerts.file import FileChannel
from autograph.dr.monitor.monitor import Monitor
from autograph.s3.boto import app_client
from autograph.stack.lifecycle import Stack

INTERVAL = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 3, 10, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def canvas(app_stack: Stack, gateway: httpx.Client, user: dict[str, str]) -> Iterator[str]:
    """The object key of a new diagram's canvas (the diagram deleted afterwards)."""
    made = gateway.post("/api/diagrams", json={"name": "dangling", "canvas": {"n": 1}},
                        headers=user)
    assert made.status_code == 201, made.text
    s = app_stack.settings
    with psycopg.connect(host=s.host, port=s.pg_port, user=s.pg_user, dbname=s.pg_database,
                         password=app_stack.creds.pg_password) as conn:
        row = conn.execute("SELECT object_key FROM diagram_versions WHERE diagram_id = %s",
                           (made.json()["id"],)).fetchone()
    assert row is not None
    yield str(row[0])
    gateway.delete(f"/api/diagrams/{made.json()['id']}", headers=user)


def _notices(alerts: AlertDispatcher, log: Path) -> list[dict[str, object]]:
    assert alerts.flush(timeout=30)
    lines = log.read_text().splitlines() if log.exists() else []
    return [n for n in map(json.loads, lines) if n["key"] == "dangling_references"]


def test_a_row_naming_a_missing_object_fires_once_and_resolves_when_it_is_back(
        app_stack: Stack, canvas: str, tmp_path: Path) -> None:
    clock = Clock()
    log = tmp_path / "alerts.log"
    alerts = AlertDispatcher([FileChannel(log)], clock, backoff_seconds=0.0)
    settings = app_stack.settings.model_copy(update={"reference_check_seconds": INTERVAL})
    monitor = Monitor(settings, alerts, {}, clock=clock, creds=app_stack.creds,
                      s3_client=lambda: app_client(settings, app_stack.creds))
    s3 = app_client(settings, app_stack.creds)
    try:
        monitor.run_once()
        assert _notices(alerts, log) == []  # every row has its object
        body = s3.get_object(Bucket="diagrams", Key=canvas)["Body"].read()
        s3.delete_object(Bucket="diagrams", Key=canvas)
        try:
            clock.now += timedelta(seconds=INTERVAL)
            monitor.run_once()
            clock.now += timedelta(seconds=INTERVAL / 2)
            monitor.run_once()  # within the interval: not scanned again, nothing new
            fired = _notices(alerts, log)
            assert [n["status"] for n in fired] == ["firing"]
            assert fired[0]["severity"] == "critical"
            assert f"diagrams/{canvas}" in str(fired[0]["message"])
            assert "1 in diagram_versions" in str(fired[0]["message"])
        finally:  # the stack is shared: later tests check that every row names an object
            s3.put_object(Bucket="diagrams", Key=canvas, Body=body)
        clock.now += timedelta(seconds=INTERVAL)
        monitor.run_once()
        assert [n["status"] for n in _notices(alerts, log)] == ["firing", "resolved"]
    finally:
        alerts.close()
