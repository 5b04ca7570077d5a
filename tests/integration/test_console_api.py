"""The DR console's server side on the real gateway: the key exchanged for a cookie session,
CSRF header on cookie changes, the audit log, alert acknowledgement, the all-kinds list, pin,
drills and their reports (only inside the reports folder)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from autograph.stack.lifecycle import Stack

CSRF = {"X-Requested-With": "autograph"}


@pytest.fixture(scope="module")
def gateway(app_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_stack.settings.service_url("gateway"), timeout=120,
                      trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def key(app_stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {app_stack.creds.admin_api_key}"}


def _session(gateway: httpx.Client, key: dict[str, str]) -> httpx.Client:
    """A new client holding only the session cookie (the shared client keeps none)."""
    answer = gateway.post("/api/admin/session", headers=key)
    gateway.cookies.clear()
    assert answer.status_code == 200, answer.text
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/api/admin" in cookie
    assert answer.json()["actor"].startswith("admin session ")
    assert "ags_" not in answer.text  # the token only travels in the cookie
    return httpx.Client(base_url=gateway.base_url, timeout=120, trust_env=False,
                        cookies=answer.cookies)


def test_the_key_is_exchanged_for_a_cookie_session_that_ends_on_logout(
        gateway: httpx.Client, key: dict[str, str], app_stack: Stack) -> None:
    with _session(gateway, key) as console:
        token = console.cookies["autograph_admin"]
        stored = (app_stack.settings.secrets_dir / "admin-sessions.json").read_text()
        assert token not in stored  # only a digest is kept
        assert console.get("/api/admin/backups").status_code == 200
        assert console.get("/api/admin/session").json()["expires_at"]
        # A change made with the cookie needs the header a cross-site form cannot send.
        assert console.post("/api/admin/alerts/ack?key=x").status_code == 403
        assert console.delete("/api/admin/session", headers=CSRF).status_code == 204
        console.cookies.set("autograph_admin", token, path="/api/admin")
        assert console.get("/api/admin/backups").status_code == 401
        console.cookies.set("autograph_admin", "ags_" + "x" * 40, path="/api/admin")
        assert console.get("/api/admin/backups").status_code == 401


def test_the_frontend_proxy_never_replays_one_callers_session_cookie(
        app_stack: Stack, key: dict[str, str]) -> None:
    frontend = app_stack.settings.service_url("frontend")
    with httpx.Client(base_url=frontend, timeout=60, trust_env=False) as operator:
        assert operator.post("/api/admin/session", headers=key).status_code == 200
        assert operator.get("/api/admin/session").json()["actor"].startswith("admin session")
    with httpx.Client(base_url=frontend, timeout=60, trust_env=False) as stranger:
        assert stranger.get("/api/admin/session").json()["actor"] is None
        assert stranger.get("/api/admin/backups").status_code == 401


def test_only_the_key_opens_a_session(gateway: httpx.Client, key: dict[str, str]) -> None:
    with _session(gateway, key) as console:
        assert console.post("/api/admin/session", headers=CSRF).status_code == 403
    assert gateway.post("/api/admin/session").status_code == 401


def test_admin_actions_and_job_ends_are_audited_with_the_actor(
        gateway: httpx.Client, key: dict[str, str]) -> None:
    with _session(gateway, key) as console:
        started = console.post("/api/admin/backup/create?wait=false", headers=CSRF)
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    deadline = time.monotonic() + 120
    while gateway.get(f"/api/admin/jobs/{job_id}", headers=key).json()["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    bad = gateway.post("/api/admin/backup/verify?backup_name=../../etc", headers=key)
    assert bad.status_code == 400
    time.sleep(0.2)
    entries = gateway.get("/api/admin/audit?limit=50", headers=key).json()
    mine = [e for e in entries if job_id in e["target"]]
    assert {e["result"] for e in mine} == {"accepted", "ok"}, mine
    assert all(e["actor"].startswith("admin session ") for e in mine)
    assert any(e["action"] == "job backup.create" for e in mine)
    refused = next(e for e in entries if e["action"] == "POST /api/admin/backup/verify")
    assert refused["status"] == 400 and refused["result"] == "failed"
    assert refused["actor"] == "admin-api-key" and "invalid backup name" in refused["detail"]
    assert gateway.get("/api/admin/audit").status_code == 401


def test_an_alert_is_acknowledged_and_silenced_and_that_is_audited(
        gateway: httpx.Client, key: dict[str, str]) -> None:
    answer = gateway.post("/api/admin/alerts/ack",
                          params={"key": "backup_failed:database", "silence_minutes": 30},
                          headers=key)
    assert answer.status_code == 200, answer.text
    ack = answer.json()
    until = datetime.fromisoformat(ack["silenced_until"])
    assert 29 * 60 < (until - datetime.now(UTC)).total_seconds() <= 30 * 60
    assert gateway.get("/api/admin/alerts/acks", headers=key).json()[
        "backup_failed:database"]["by"] == "admin-api-key"
    assert gateway.post("/api/admin/alerts/ack", params={"key": ""},
                        headers=key).status_code == 400
    assert gateway.post("/api/admin/alerts/ack", params={"key": "k", "silence_minutes": -1},
                        headers=key).status_code == 422
    entries = gateway.get("/api/admin/audit?limit=10", headers=key).json()
    assert any(e["action"] == "POST /api/admin/alerts/ack" and "backup_failed" in e["target"]
               for e in entries)


def test_every_kind_is_listed_and_a_backup_is_pinned_and_unpinned(
        gateway: httpx.Client, key: dict[str, str]) -> None:
    dump = gateway.post("/api/admin/backup/create", headers=key).json()["name"]
    archive = gateway.post("/api/admin/minio/backup/create?bucket=diagrams",
                           headers=key).json()["name"]
    snap = gateway.post("/api/admin/minio/snapshots/create?bucket=diagrams", headers=key)
    assert snap.status_code == 201, snap.text
    listed = gateway.get("/api/admin/backups", headers=key).json()
    kinds = {(row["kind"], row["name"]) for row in listed["backups"]}
    assert ("database", dump) in kinds and ("bucket", archive) in kinds
    assert any(kind == "snapshot" for kind, _ in kinds)
    pinned = gateway.post("/api/admin/backup/pin", params={"backup_name": dump}, headers=key)
    assert "pinned" in pinned.json()["tags"]
    unpinned = gateway.post("/api/admin/backup/pin", params={"backup_name": dump,
                                                           "pinned": "false"}, headers=key)
    assert "pinned" not in unpinned.json()["tags"]
    assert gateway.post("/api/admin/backup/pin", params={"backup_name": "nope"},
                        headers=key).status_code == 404
    plan = gateway.get("/api/admin/prune/plan", headers=key).json()
    assert plan["dry_run"] is True


def test_drill_reports_are_served_only_from_the_reports_folder(
        gateway: httpx.Client, key: dict[str, str], app_stack: Stack) -> None:
    dr_dir = app_stack.settings.dr_dir
    folder = dr_dir / "reports" / "20260101T000000Z-objects"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.html").write_text("<!doctype html><title>drill</title><p>RTO 12 s</p>")
    line = {"scenario": "objects", "mode": "sandbox", "started_at": "2026-01-01T00:00:00Z",
            "finished_at": "2026-01-01T00:05:00Z", "passed": True, "rto_seconds": 12.5,
            "rpo_seconds": 3.0}
    outside = dict(line, started_at="2026-01-02T00:00:00Z", finished_at="2026-01-02T00:01:00Z",
                   report="/etc")
    with open(dr_dir / "drills.jsonl", "a") as handle:
        handle.write(json.dumps(dict(line, report=str(folder))) + "\n")
        handle.write(json.dumps(outside) + "\n")
    drills = gateway.get("/api/admin/drills", headers=key).json()
    good = next(d for d in drills if d["report"] == str(folder))
    assert good["has_report"] and good["rto_seconds"] == 12.5
    assert not next(d for d in drills if d["report"] == "/etc")["has_report"]
    report = gateway.get(f"/api/admin/drills/{good['id']}/report", headers=key)
    assert report.status_code == 200 and "RTO 12 s" in report.text
    assert "default-src 'none'" in report.headers["content-security-policy"]
    bad_id = next(d["id"] for d in drills if d["report"] == "/etc")
    assert gateway.get(f"/api/admin/drills/{bad_id}/report", headers=key).status_code == 404
    assert gateway.get("/api/admin/drills/999/report", headers=key).status_code == 404
    assert gateway.get("/api/admin/drills/-1/report", headers=key).status_code == 422
